"""The published coefficient sets, as plain records for seeding the fit store.

Order matters: the store numbers versions per (law, scope) in insertion order, so hoffmann2022 becomes
version 1 of ("chinchilla", "massivetext") and besiroglu2024 version 2, the active one; of ("krajewski-moe",
"c4") krajewski2024-dense is version 1, krajewski2024-e16 version 2 and krajewski2024 version 3, the active one.
"""

from __future__ import annotations

from typing import Any

from fits.fit import Fit, Provenance
from fits.laws.chinchilla import BESIROGLU2024, BESIROGLU2024_INTERVALS, HOFFMANN2022, HOFFMANN2022_ROUNDED
from fits.laws.families.moe import KRAJEWSKI2024, KRAJEWSKI2024_DENSE, KRAJEWSKI2024_E16
from fits.laws.kaplan2020 import KAPLAN2020

_KRAJEWSKI_CITATION = (
    "Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts, arXiv:2402.07871"
)
_KRAJEWSKI_RUNS = (
    "C4, GPT-2 tokenizer, 0.5M-token batches of 2048 sequences of 256 tokens, AdamW, peak LR 2e-4, cosine to "
    "2e-5 (App. A); expert-choice routing, E·G experts, each token using G of them. N counts total non-embedding "
    "parameters (attention and every expert), D tokens, G = d_ff/expert_d_ff."
)
_KAPLAN_NOTE = (
    "Tables 2, 3, 5 and 6 of the paper in one set (nd_ keys: Table 2 L(N,D); ns_ keys: Table 3 L(N,S); "
    "N_e..p_D: Table 6 with C_min in PF-days). Choices where the paper disagrees with itself: "
    "B_star = 2e8 (eq 1.4 text) not 2.1e8 (Table 5); C_c_min = 3.1e8 PF-days (Table 5) not 2.3e8 (figure "
    "legends); C_c = 1.6e7 (Table 5) not 2.0e7 (Fig. 13); theoretical alpha_C_min computed (0.052), not the "
    "printed 0.054; D_required = 5e3*N^0.74 uses the Table 2 exponents; one-epoch data from Table 6 "
    "(2e10*C^0.27) not eq 6.7 (4e10*C^0.26); LR(N) of eq D.1 read with the natural log."
)

PUBLISHED: tuple[dict[str, Any], ...] = (
    {
        "name": "kaplan2020",
        "law": "kaplan",
        "scope": "webtext2",
        "coefficients": dict(KAPLAN2020),
        "intervals": {},
        "citation": "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361",
        "note": _KAPLAN_NOTE,
        "active": True,
    },
    {
        "name": "hoffmann2022",
        "law": "chinchilla",
        "scope": "massivetext",
        "coefficients": dict(HOFFMANN2022),
        "intervals": {},
        "citation": "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv:2203.15556",
        "note": (
            "Approach-3 fit, unrounded values (N counts all parameters). As printed, rounded: "
            + ", ".join(f"{k} {v:g}" for k, v in HOFFMANN2022_ROUNDED.items())
            + ". The printed confidence intervals were implausibly narrow and are not carried."
        ),
        "active": False,
    },
    {
        "name": "besiroglu2024",
        "law": "chinchilla",
        "scope": "massivetext",
        "coefficients": dict(BESIROGLU2024),
        "intervals": {k: list(v) for k, v in BESIROGLU2024_INTERVALS.items()},
        "citation": "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
        "note": (
            "Epoch AI refit of 240 points read off Hoffmann et al.'s Fig. 4 (5 highest-loss points dropped); "
            "intervals are 95% bootstrap intervals. Default set for planning."
        ),
        "active": True,
    },
    {
        "name": "krajewski2024-dense",
        "law": "krajewski-moe",
        "scope": "c4",
        "coefficients": dict(KRAJEWSKI2024_DENSE),
        "intervals": {},
        "citation": _KRAJEWSKI_CITATION,
        "note": "Table 1, dense row: L = c + a/N^α + b/D^β (g = 0, expansion 1), fitted on the dense runs of "
        "Table 4 (3M–85M non-embedding parameters, 16B–66B tokens). " + _KRAJEWSKI_RUNS,
        "active": False,
    },
    {
        "name": "krajewski2024-e16",
        "law": "krajewski-moe",
        "scope": "c4",
        "coefficients": dict(KRAJEWSKI2024_E16),
        "intervals": {},
        "citation": _KRAJEWSKI_CITATION,
        "note": "App. D Table 8: eq. 9 refitted at expansion rate E = 16 on the runs of Table 7 (16×3M–16×49M "
        "active, 8B–66B tokens, G 1–16); a smaller study than the E = 64 one (wider bootstrap percentiles, "
        "Table 9). " + _KRAJEWSKI_RUNS,
        "active": False,
    },
    {
        "name": "krajewski2024",
        "law": "krajewski-moe",
        "scope": "c4",
        "coefficients": dict(KRAJEWSKI2024),
        "intervals": {},
        "citation": _KRAJEWSKI_CITATION,
        "note": "Table 1, MoE row: eq. 9 L = c + (g/G^γ + a)/N^α + b/D^β at expansion rate E = 64, fitted (Huber "
        "δ = 0.1, BFGS) on 100+ runs of Table 3 (64×3M–64×85M active, 129M–3.7B total non-embedding, 16B–130B "
        "tokens, G 1–16); RMSE 0.015. Table 5 (without the 20% lowest-loss runs): a 17.6, α 0.114, b 26.7, "
        "β 0.140, g 2.07, γ 0.570, c 0.472. " + _KRAJEWSKI_RUNS,
        "active": True,
    },
)
"""Published sets: name, law, scope, coefficients, intervals, citation, note, active."""


def published_sets() -> list[dict[str, Any]]:
    """Deep copies of PUBLISHED, safe to mutate."""
    return [
        {
            **rec,
            "coefficients": dict(rec["coefficients"]),
            "intervals": {k: list(v) for k, v in rec["intervals"].items()},
        }
        for rec in PUBLISHED
    ]


def published_fits() -> list[Fit]:
    """PUBLISHED as unsaved Fit records (no id, version or created yet), in seeding order."""
    return [
        Fit(
            law=rec["law"],
            scope=rec["scope"],
            name=rec["name"],
            coefficients=rec["coefficients"],
            intervals=rec["intervals"],
            provenance=Provenance(source="published", citation=rec["citation"], note=rec["note"]),
            active=rec["active"],
        )
        for rec in published_sets()
    ]
