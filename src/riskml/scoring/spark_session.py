"""The SparkSession of the Spark engine (``riskml.scoring.spark``).

``spark_session`` starts ``local[*]`` by default, bound to loopback, the worker
Python pinned to this interpreter, no UI; any other master is used as given, and
under spark-submit the submitted session is used. A local JVM starts with
``LOCAL_JAVA_OPTIONS`` and maps its classes from a class-data archive
(``ClassArchive``): together they cut the JVM's CPU time of a 200,000-record run
by about two thirds (26 s to 9 s on 2 cores).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from riskml import config

DEFAULT_MASTER = "local[*]"
DEFAULT_BATCH_ROWS = 20_000  # records per Arrow batch handed to mapInArrow
# Local mode's JVM (the driver is the executor): a run is seconds to minutes, where the
# JIT's optimising tier and a parallel collector cost more CPU than they save; on 2 cores
# these take the JVM's CPU time for 200,000 records from 26 s to 15 s (without the archive).
LOCAL_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


# --------------------------------------------------------------------------- session
def spark_session(master: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> Any:
    """A SparkSession for scoring (``local[*]`` by default, bound to loopback, no UI).

    Call before anything else starts Spark in this process: settings of an
    existing session cannot change.
    """
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ  # under spark-submit
    master = master or DEFAULT_MASTER
    local = master.startswith("local") and not submitted
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder if submitted else SparkSession.builder.master(master)
    builder = (
        builder.appName("riskml-score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executorEnv.MLFLOW_TRACKING_URI", config.tracking_uri())
        .config("spark.executorEnv.MLFLOW_DISABLE_TELEMETRY", "true")
    )
    if os.environ.get("RISKML_ARTIFACT_ROOT"):
        builder = builder.config(
            "spark.executorEnv.RISKML_ARTIFACT_ROOT", os.environ["RISKML_ARTIFACT_ROOT"]
        )
    if not local:
        return builder.getOrCreate()
    from pyspark import SparkContext

    builder = (
        builder.config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "8")
    )
    archive = ClassArchive() if SparkContext._gateway is None else None  # a JVM to start
    options = f"{LOCAL_JAVA_OPTIONS} {archive.option() if archive else ''}".strip()
    try:
        return builder.config("spark.driver.extraJavaOptions", options).getOrCreate()
    except Exception:
        if archive is None or not archive.mapped:
            raise
        archive.discard()  # a JVM that cannot start with it starts without
        return builder.config("spark.driver.extraJavaOptions", LOCAL_JAVA_OPTIONS).getOrCreate()


class ClassArchive:
    """A class-data archive of the local JVM (the JDK's dynamic AppCDS).

    Spark's JVM loads some 15,000 classes from its jars at each start; mapped from an
    archive they take the JVM's CPU time for 200,000 records from 15 s to 9 s on 2 cores
    and start the session in 3-7 s instead of 8-15 s (a loaded machine). The first local run's JVM writes it as it exits
    (``-XX:ArchiveClassesAtExit``, to a part file, moved into place once that JVM has
    ended cleanly); a JVM that cannot start with it has it removed and starts without. One
    per Java and pyspark in ``<state>/spark-cds/`` (~180 MB); ``RISKML_SPARK_CDS=0``: none.
    """

    def __init__(self) -> None:
        import pyspark

        self.path: Path | None = None
        self.mapped = False
        home = os.environ.get("JAVA_HOME")
        java = os.path.join(home, "bin", "java") if home else shutil.which("java")
        if os.environ.get("RISKML_SPARK_CDS") == "0" or not java or not os.path.isfile(java):
            return
        java = os.path.realpath(java)
        stat = os.stat(java)
        key = f"{java}|{stat.st_size}|{stat.st_mtime_ns}|{pyspark.__file__}|{LOCAL_JAVA_OPTIONS}"
        digest = hashlib.sha256(f"{key}|{pyspark.__version__}".encode()).hexdigest()[:16]
        self.path = config.STATE_DIR / "spark-cds" / f"{digest}.jsa"

    def option(self) -> str:
        if self.path is None:
            return ""
        if self.path.is_file():
            self.mapped = True
            return f"-XX:SharedArchiveFile={self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return ""
        part = self.path.with_name(f"{self.path.stem}.{os.getpid()}.part")
        atexit.register(self._keep, part)
        return f"-XX:ArchiveClassesAtExit={part}"

    def _keep(self, part: Path) -> None:
        """At exit: the JVM ended (it writes the archive as it exits), its file kept if clean."""
        from pyspark import SparkContext

        proc = getattr(SparkContext._gateway, "proc", None)
        with contextlib.suppress(Exception):
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()  # the gateway's signal to exit
                proc.wait(timeout=120)
                if proc.returncode == 0 and part.is_file() and self.path is not None:
                    os.replace(part, self.path)
        with contextlib.suppress(OSError):
            part.unlink()

    def discard(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.mapped = False
