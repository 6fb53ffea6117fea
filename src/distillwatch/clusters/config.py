"""Every threshold, weight and window of the account graph, in one frozen value.

Edge weights are on one scale: an account pair enters the clustering graph when the weights of all
its edge types add up to at least ``min_edge_weight`` (1.0 by default). A *strong* type can reach
that alone (a shared card, a declared organisation, a replacement account taking over with the
same template and client); a *weak* type cannot (a shared client fingerprint, address block,
network, sign-up hour, template), so a pair needs several weak signals, or one strong one.
``timing`` and ``ip`` sit in between: their weight grows with the evidence (how far above chance
the shared activity is, how exclusive and how often the shared address is) and reaches the
threshold only when the evidence is clear.

Defaults were tuned on one simulated population (``bench/bench_clusters.py --seed 5``) and checked
on another seed; they favour precision (no legitimate account in a campaign's cluster) over
recall.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Final

EDGE_TYPES: Final = (
    "payment",
    "org",
    "ip",
    "subnet24",
    "asn",
    "client",
    "template",
    "timing",
    "wave",
    "signup_burst",
    "handover",
)
"""Values of the edges' ``type`` column, strongest evidence first (roughly)."""


@dataclass(frozen=True, slots=True)
class GraphConfig:
    """Thresholds, weights and windows of :func:`~distillwatch.clusters.account_edges` and
    :func:`~distillwatch.clusters.cluster_accounts`. A weight of 0 turns its edge type off;
    every other number must be positive (``timing_min_surprise`` may be anything).

    *Key caps*: a key (card, address in a window, client fingerprint, template family, sign-up
    window) shared by more accounts than its cap is **dropped**, not down-weighted: a corporate or
    campus NAT address, a popular SDK build or a public prompt template says nothing about who
    controls an account, and all-pairs over a large key would cost its size squared. Below the
    cap, infrastructure and template keys are **down-weighted by rarity** (IDF: a key shared by
    two accounts counts fully, one shared by a large share of the population counts almost
    nothing). Timing buckets are the exception: a busy bucket is split, not dropped (see
    ``timing_max_bucket_accounts``).
    """

    # --- shared by several types --------------------------------------------------------------
    max_key_accounts: int = 50
    """Cap on accounts per infrastructure key (an IP, a /24 or an ASN within its window; an IP
    over the whole frame). Larger keys are NAT gateways, CGNAT pools or clouds: dropped."""
    idf_min_accounts: int = 1000
    """Population size below which IDF treats the frame as this large, so small frames (tests, a
    single org) do not make every key look common. IDF of a key shared by ``n`` of ``N`` accounts
    is ``ln(N'/n) / ln(N'/2)`` clipped to [0, 1], ``N' = max(N, idf_min_accounts)``."""

    # --- payment (strong) -----------------------------------------------------------------------
    payment_weight: float = 3.0
    """A shared payment fingerprint: one card paying for several accounts is one payer."""
    max_payment_accounts: int = 500
    """Cards shared by more accounts are dropped (a processor placeholder or test card)."""

    # --- org (strong, declared) ---------------------------------------------------------------
    org_weight: float = 1.5
    """Same ``org_id``: a declared relationship. Keeps a legitimate team together as its own
    cluster, which is what stops its members being absorbed by a campaign next door."""
    max_org_accounts: int = 500
    """Organisations with more accounts than this get no org edges (all-pairs would be too many
    and a large org is no tighter for it)."""

    # --- ip (medium) ----------------------------------------------------------------------------
    ip_weight: float = 0.8
    """Full weight of using one IP address in the same window: residential proxies and shared
    egress recur across the accounts of one operator. Scaled by IDF of the address's account
    count and by ``ip_full``. Below the threshold on its own: a residential proxy exits through
    real people's home lines, so sharing an address with a campaign account is not enough."""
    ip_window: timedelta = timedelta(days=1)
    """Two accounts must use the address within one such bucket (calendar buckets, UTC)."""
    ip_full: float = 1.0
    """IDF-weighted shared (address, window) buckets at which an IP edge reaches ``ip_weight``:
    one day on an address that no third account uses is enough (a proxy exit or a home line
    shared by two accounts); an address shared by more needs more days."""

    # --- subnet24 (weak) ------------------------------------------------------------------------
    subnet24_weight: float = 0.3
    """Same IPv4 /24 in the same window: proxy pools and small hosting ranges, but also
    neighbours on one ISP. IPv6 addresses get no subnet key."""
    subnet24_window: timedelta = timedelta(days=1)
    """Both accounts must use the /24 within one such bucket."""
    subnet24_full: float = 2.0
    """IDF-weighted shared (/24, window) buckets at which a subnet edge reaches its weight."""

    # --- asn (very weak) ------------------------------------------------------------------------
    asn_weight: float = 0.1
    """Same autonomous system in the same hour: only a small ASN (a niche host) passes the key
    cap, so this mostly adds a little to pairs already linked otherwise."""
    asn_window: timedelta = timedelta(hours=1)
    """Both accounts must use the ASN within one such bucket; a bucket (ASN, hour) with more
    than ``max_key_accounts`` accounts is dropped."""
    asn_full: float = 12.0
    """IDF-weighted shared (ASN, hour) buckets at which an ASN edge reaches its weight."""

    # --- client (weak) --------------------------------------------------------------------------
    client_weight: float = 0.6
    """Same user agent and TLS fingerprint. A stock SDK or browser is shared by thousands, so the
    weight is ``client_weight * IDF``; a custom harvesting client is rare and counts fully."""
    max_client_accounts: int = 500
    """Client fingerprints used by more accounts are dropped (too common to mean anything)."""
    client_max_share: float = 0.05
    """Client fingerprints used by more than this share of the frame's accounts (at least
    ``idf_min_accounts``, as for IDF) are dropped too: a stock SDK or browser build."""

    # --- template (weak) ------------------------------------------------------------------------
    template_weight: float = 0.8
    """Using the same *template* family (a fixed wrapper around varying content, see
    :func:`~distillwatch.features.templates.template_families`). A campaign reuses its wrappers
    across its accounts, but public prompt templates recur across strangers too, so alone this
    never reaches the threshold. *Duplicate* families (repeats of one prompt, such as "hi") are
    ignored."""
    template_full: float = 2.0
    """IDF-weighted shared families at which a template edge reaches ``template_weight``."""
    max_template_accounts: int = 300
    """Template families used by more accounts are dropped as public templates."""
    template_min_calls: int = 2
    """An account uses a family only when at least this many of its calls fall in it."""
    corroborated_types: tuple[str, ...] = ("ip", "subnet24", "signup_burst", "handover", "timing")
    """Pairs linked by an edge of these types also count the template families and client
    fingerprints over their caps (``max_template_accounts``, ``max_client_accounts``,
    ``client_max_share``), IDF-weighted: a key held by thousands adds little, and only to a pair
    already linked another way (all its pairs would cost its size squared). A large campaign's
    shared wrappers and client then add to the addresses and sign-up bursts its members share.
    (``payment``, ``org`` and ``wave`` link a pair on their own: nothing to add.)"""

    # --- timing (medium) ------------------------------------------------------------------------
    timing_weight: float = 1.5
    """Synchronized activity (in the manner of SynchroTrap): both accounts active in the same
    short buckets far more often than their activity levels predict, on several days. Weight is
    ``timing_weight * min(1, surprise / timing_full_surprise)``."""
    timing_bucket: timedelta = timedelta(minutes=5)
    """Length of an activity bucket: about the spread of one synchronized wave of calls."""
    timing_min_buckets: int = 6
    """Accounts active in fewer buckets are not compared (too little to be synchronized)."""
    timing_min_shared: int = 5
    """Fewest shared buckets for a timing edge."""
    timing_min_days: int = 2
    """Shared buckets must fall on at least this many UTC days (sustained, not one busy hour)."""
    timing_min_lift: float = 1.5
    """Shared buckets over the expected number. Accounts active so often that they could not
    reach this lift with anyone (24/7 services) are not compared at all."""
    timing_min_surprise: float = 1.0
    """Fewest *surprise* for a timing edge: ``-log10`` of the Poisson chance of sharing at least
    that many buckets given the expectation, less ``log10`` of the number of pairs compared, so
    it is the chance that any compared pair shares that much by luck. The expectation uses the
    population's activity per bucket, so the daily peak is not evidence."""
    timing_full_surprise: float = 4.0
    """Surprise at which a timing edge reaches ``timing_weight``."""
    timing_max_bucket_accounts: int = 300
    """A bucket with more active accounts is split into random sub-buckets (a seeded hash of
    account and bucket) of about this size, and only accounts in one sub-bucket are compared: the
    cost stays bounded and the expectation counts each such bucket at its reduced chance. A
    sub-bucket that hashing left over twice this size is dropped."""

    # --- wave (medium) --------------------------------------------------------------------------
    wave_weight: float = 1.5
    """Both accounts are *in step* with one set of waves: bursts of activity (*hot*
    ``timing_bucket`` buckets, among all accounts or among those of one client fingerprint or
    template family) in which each account is active far more often than chance. Pairwise
    ``timing`` fades as a campaign and the population grow; the campaign's waves as a whole do
    not. Weight is ``wave_weight * min(1, surprise / wave_full_surprise)``, the surprise being
    the lesser of the two accounts'. The accounts in step with one set of waves are linked
    sparsely (see ``wave_neighbours``)."""
    wave_baseline: timedelta = timedelta(hours=1)
    """A bucket's expected activity: the rolling median of active accounts over this span
    around it (the smooth daily curve, which a 15-minute wave does not move)."""
    wave_min_z: float = 4.0
    """A hot bucket exceeds its baseline by at least this many Poisson standard deviations..."""
    wave_min_lift: float = 1.15
    """... and by at least this factor."""
    wave_schedule_share: float = 0.75
    """A time of day that is hot on at least this share of the frame's days (and on
    ``timing_min_days``) is a schedule, not waves: a daily quota reset, a cron job or a class
    that unrelated accounts keep too. Its buckets are not hot."""
    wave_min_buckets: int = 6
    """Fewest hot buckets for a set of waves."""
    wave_min_surprise: float = 1.0
    """Fewest surprise (``-log10`` Poisson tail, Bonferroni over the (key, account) pairs
    tested) for an account to be in step with a set of waves."""
    wave_full_surprise: float = 1.5
    """Surprise (the lesser of the pair's) at which a wave edge reaches ``wave_weight``. At the
    default it reaches ``min_edge_weight`` at ``wave_min_surprise``: two accounts each in step
    with one set of waves, beyond chance, are linked without more evidence."""
    wave_key_accounts: int = 20
    """Waves are looked for in the whole frame and among the accounts of each client fingerprint
    and template family held by at least this many accounts: a smaller campaign's waves, lost
    among a larger one's in the whole frame, stand out among the accounts of its own client or
    wrapper."""
    wave_key_share: float = 0.2
    """When at least this share of a key's accounts (and ``wave_key_accounts``) are in step with
    its waves, its other accounts are tested again against those waves alone, with the
    Bonferroni correction of this smaller family of tests."""
    wave_neighbours: int = 10
    """Each account in step with a set of waves is linked to the next this many in a fixed hashed
    order of the accounts in step with it (a ring lattice: connected, ``O(n * k)`` edges, not all pairs)."""

    # --- signup_burst (weak) --------------------------------------------------------------------
    signup_burst_weight: float = 0.3
    """Created within ``signup_window`` of each other through the same sign-up channel. Fake
    accounts are made in bursts, but so are a class's or a team's real ones."""
    signup_window: timedelta = timedelta(hours=1)
    """Most time between two sign-ups of one burst."""
    max_signup_accounts: int = 50
    """Sign-up windows with more accounts on one channel (a launch, a class) are dropped."""

    # --- handover (strong) ----------------------------------------------------------------------
    handover_weight: float = 1.2
    """Account B's first call comes within ``handover_window`` after account A's last call, and
    the two share a template family, client fingerprint or /24 that at most ``max_key_accounts``
    accounts use: a banned account replaced by
    a fresh one that picks up its work. When account metadata is given, B must also have been
    created no earlier than ``handover_window`` before A's last call."""
    handover_full_kinds: int = 2
    """Kinds of thing shared (template, client, /24) at which a handover reaches its weight; one
    kind gives a share of it. Campaigns that reuse one public template hand over nothing."""
    handover_window: timedelta = timedelta(hours=12)
    """Most time between A's last call and B's first."""
    handover_min_quiet: timedelta = timedelta(hours=6)
    """A stops at least this long before the frame ends, and B starts at least this long after
    the frame begins; otherwise the frame's edges, not a handover, explain the gap."""

    # --- clustering -----------------------------------------------------------------------------
    min_edge_weight: float = 1.0
    """Fewest summed weight over all edge types for a pair to enter the clustering graph."""
    weak_types: tuple[str, ...] = ("ip", "subnet24", "asn", "client", "signup_burst")
    """Edge types whose degree is capped before summing."""
    weak_degree_cap: int = 15
    """Each account keeps at most this many edges of each weak type, its strongest; an edge is
    kept only if it is among the strongest of both its ends, so a hub (a NAT address, a shared
    proxy) cannot chain unrelated accounts together."""
    resolution: float = 0.02
    """Leiden's CPM resolution in edge-weight units: a cluster holds together when its pairs'
    mean summed weight exceeds it. Unlike modularity it does not shrink as the graph grows, so a
    small campaign is not merged into a neighbour by a few weak links."""
    min_cluster_size: int = 3
    """Smaller communities (pairs, singletons) get a null ``cluster_id``: their edges still say
    what links them, but a cluster finding needs a group."""
    previous_min_share: float = 0.5
    """A new cluster keeps a previous cluster's id when at least this share of its members that
    the previous table placed in a cluster were in that one (each previous id is kept once)."""

    def __post_init__(self) -> None:
        for name in ("weak_types", "corroborated_types"):
            unknown = set(getattr(self, name)) - set(EDGE_TYPES)
            if unknown:
                raise ValueError(f"{name} has unknown edge types {sorted(unknown)}")
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, timedelta):
                value = value.total_seconds()
            if not isinstance(value, int | float) or field.name == "timing_min_surprise":
                continue
            if value < 0 or (value == 0 and not field.name.endswith("_weight")):
                allowed = "at least 0" if field.name.endswith("_weight") else "positive"
                raise ValueError(f"{field.name} must be {allowed}, got {value!r}")
