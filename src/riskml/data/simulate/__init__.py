"""A household panel simulator for rural China, with the true risk it implies.

``simulate_panel`` returns one record per household per year (period
``YYYY-06``; money is the 12 months ending then) carrying every contract field
in canonical dtypes, the training label ``at_risk_next`` (computed by
``riskml.label.label_panel``, the same function training uses) and
``oracle_p``, the probability of ``at_risk_next = 1`` given everything the
simulator knows about the household at that period, latent traits included.

How the world works (one call of ``step`` moves every household one year):

* **Places.** Counties come from ``riskml/data/tables/counties.csv`` (real GB/T
  2260 codes in Yunnan, Guizhou, Gansu, Henan, Sichuan, Guangxi, Xinjiang,
  Fujian and Zhejiang). Its ``income_level``, ``minority_share``,
  ``formerly_poor_share``, ``relocated_share``, ``disaster_rate`` and
  ``weight`` columns are rough simulation parameters, not official statistics.
  Village codes are the county code + a 3-digit township + a 3-digit village
  committee; relocated households live in the county town's resettlement
  community (``…101001``).
* **People.** Households have up to ten members, each with an age, a relation
  to the head, chronic illness, certified disability, schooling and a
  migrant-work status. Every year members age, may die (a Gompertz hazard
  raised by frailty and illness), young adults leave (marriage, own household),
  spouses marry in and babies are born; when the head dies the spouse or the
  oldest member takes over, and a household whose last member dies leaves the
  panel. Children are in compulsory school at 6–15; at 16 and 19 they go on to
  high school / college with a probability that rises with the head's education
  and falls for formerly poor households. Formerly poor households (建档立卡)
  have lower ability, frailer health, more disability and less land on
  average, and get more support.
* **Income.** Wages: members working outside the county (months, and a monthly
  wage by age, the head's education, household ability and a member skill) and
  seasonal local work; public-welfare jobs for some formerly poor households.
  Operating income: farming (land plus labour at home, full time, part time
  beside local work or elderly helpers, times a persistent productivity state,
  minus costs, so a disaster or a bad season can make it negative), an
  occasional non-farm business that can fail, minus interest on debt. Property:
  rent and collective dividends. Transfers: pensions from 60, money from
  relatives (most of all for elderly households), farm, ecological and
  disability subsidies, support for formerly poor households, disaster relief,
  and dibao (the gap between the local dibao line and the household's assessed
  income, at least 35% and at most 85% of the line, per member) or tekun
  support (1.3 × the dibao line per member). Dibao and tekun status follow a
  means test on last year's income.
* **Spending.** Out-of-pocket medical costs rise with age and chronic illness
  (2.6 × without insurance, halved by medical assistance for dibao, tekun and
  formerly poor households) plus occasional catastrophic illness, which also
  costs work months; schooling costs are small in compulsory school and large
  in high school and college (reduced by student aid). Debt grows when income
  cannot carry spending and losses, and is repaid from surpluses.
* **Shocks.** County-year disasters (random, at each county's rate, plus any
  scheduled in the scenario) cut farm output, cause losses and damage houses
  and water supply. An employment shock year (2020 by default: lockdowns in the
  12 months to June 2020) cuts migrant wages and months and sends some
  migrants home.
* **Latent state** that records do not show: household ability (wages, farm
  yield, schooling, migration), health frailty (illness, catastrophic illness,
  death), the farm productivity state, land, member skills, exact ages and
  relations.

Risk therefore comes from: low and volatile income relative to the line (low
ability, little labour, elderly households, no migrant worker, farming only),
rigid spending (chronic illness, no insurance, children entering high school or
college), disasters, the employment shock, and lines that rise faster than some
incomes. With the default lines and scenario the yearly base rate of
``at_risk_next`` is about 7–10% (about 1.5 × higher for formerly poor
households); ``oracle_p`` reaches a ROC AUC of about 0.84 against about 0.73 for
per-capita income relative to the line, and a gradient-boosted model on the
record and the previous year's record comes within about 0.02 of the oracle.

The oracle re-simulates the next year from the current state ``oracle_draws``
times with the same ``step`` that produced the real next year (households ×
draws at once), integrating over every random event of that year, including
which counties a random disaster hits. It knows the scenario's scheduled events
(part of the world) but not next year's random draws. It is the probability
that the next record is at risk given that the household still exists (about
0.3% of households a year dissolve). For the last year it uses the next year's
lines, extrapolated at the table's last growth rate if the table ends.

Values missing at random (``MISSING_RATES``) are set after simulation, so a
label is missing where the next record lacks one of its inputs; ``oracle_p``
is computed from the true values.

Randomness: the same ``seed`` gives the same panel. Households are simulated in
fixed chunks of ``CHUNK_HOUSEHOLDS``, each with its own random streams derived
from the seed, so results do not depend on the number of worker threads, and
the real panel does not depend on ``oracle_draws``.

**Version 2** (``simulate_panel(..., version=2)``, ``riskml simulate --version 2``)
is a harder, more honest world on top of this one: persistent household
earnings (a household term, a slowly decaying AR(1) deviation and a transitory
shock), an unobserved resilience trait (earnings and shock exposure), support
that follows detection by a simulated monitoring system (the ``detected``
column), and measurement error in reported income; see ``v2``. Its base rate is
about 12–13% and the default model's gap to the oracle about twice version 1's.
Version 1 stays the default and is unchanged, for comparisons.

Modules: ``scenario`` (the scenario's events), ``world`` (counties, villages,
lines, prices, county-year shocks), ``state`` (household state and its start),
``ages`` (age tables), ``year`` (a year's context and household draws), the
yearly ``step`` and its sub-steps ``demography``, ``health``, ``safety_net``,
``income`` and ``spending``, the ``oracle``, and ``panel`` (chunks, random
streams and ``simulate_panel``); ``constants`` holds the shared constants.
Version 2 adds ``latent`` (its parameters and latent state), ``detection``,
``reporting`` and ``v2`` (its step, oracle and chunks).
"""

from .constants import (
    BURN_IN_STEPS,
    CHUNK_HOUSEHOLDS,
    DEFAULT_ORACLE_DRAWS,
    MISSING_RATES,
    ORACLE_BATCH_ROWS,
    PERIOD_MONTH,
    PRICE_BASE_YEAR,
    SLOTS,
)
from .latent import V2Params
from .panel import VERSIONS, simulate_panel
from .scenario import DisasterEvent, EmploymentShock, LineChange, Scenario
from .world import load_counties

__all__ = [
    "BURN_IN_STEPS",
    "CHUNK_HOUSEHOLDS",
    "DEFAULT_ORACLE_DRAWS",
    "MISSING_RATES",
    "ORACLE_BATCH_ROWS",
    "PERIOD_MONTH",
    "PRICE_BASE_YEAR",
    "SLOTS",
    "VERSIONS",
    "DisasterEvent",
    "EmploymentShock",
    "LineChange",
    "Scenario",
    "V2Params",
    "load_counties",
    "simulate_panel",
]
