"""Unit conversions used at the edges. Inside the code: FLOPs, parameters, tokens, steps, nats."""

PF_DAY = 8.64e19
"""FLOPs in one petaFLOP/s-day (1e15 FLOP/s for 24 hours), as Kaplan et al. 2020 use it."""
