"""/v1/hardware: the accelerator catalogue, and one budget compared across accelerators."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import Body

from api.controllers.documented import answers
from api.controllers.predict import fit_for
from api.database import Database
from api.examples import accelerators_example, comparison_example, example
from api.problems import outside_the_law
from api.schemas import AcceleratorInfo, CompareRequest
from fits.fit import Fit
from planner.plan import HardwareComparison


def accelerators() -> list[AcceleratorInfo]:
    from planner.catalogue import catalogue

    return [msgspec.convert(a.to_dict(), AcceleratorInfo) for a in catalogue()]


@outside_the_law
def _compare(fit: Fit, data: CompareRequest) -> HardwareComparison:
    from planner.compare import compare
    from planner.request import validate

    validate(data.request)
    return compare(data.request, fit, data.gpus)[0]


class HardwareController(Controller):
    tags = ("hardware",)

    @get(
        "/v1/hardware",
        summary="Accelerator catalogue",
        description=(
            "Every accelerator the planner knows: dense bf16 and fp8 peaks (the datasheets' 'with sparsity' figures "
            "are twice these and are never used), memory and its bandwidth, interconnect inside and between nodes, "
            "the default MFU and an indicative price per device-hour (a deployment overrides prices with "
            "SCALEPLAN_GPU_PRICES), each with its source. A plan can also name any accelerator with "
            "hardware.peak_tflops and hardware.memory_gb."
        ),
        responses={200: ResponseSpec(list[AcceleratorInfo], description="The catalogue.",
                                     examples=[example("catalogue (first two)", accelerators_example())])},
    )
    async def catalogue(self) -> list[AcceleratorInfo]:
        return accelerators()

    @post(
        "/v1/hardware/compare",
        summary="Compare accelerators for one budget",
        description=(
            "Plans the request on each accelerator (every catalogue entry, or `gpus`) at the request's GPU count "
            "and reports, per accelerator, the model, predicted loss, wall-clock, GPU-hours, cost and whether the "
            "model fits on a parallel layout; `best` names the one a plan with hardware.gpu 'best' takes, and "
            "`reason` says why. A money (`budget_usd`) or hours budget buys each accelerator different FLOPs; a FLOP "
            "budget trains the same model everywhere. Nothing is stored."
        ),
        status_code=200,
        responses=answers(200, HardwareComparison, "One option per accelerator.",
                          example("$500k on 256 GPUs", comparison_example()), 404, 409, 422),
    )
    async def compare(
        self,
        database: NamedDependency[Database],
        data: Annotated[CompareRequest, Body(description="The budget and the accelerators.", examples=[
            example("$500k on 256 GPUs of any kind", {"request": {"budget_usd": 5e5, "hardware": {"gpu": "best",
                                                                                                     "count": 256}}}),
            example("1e23 FLOPs on 512 H100 or B200", {"request": {"compute_flops": 1e23,
                                                                   "hardware": {"gpu": "best", "count": 512}},
                                                       "gpus": ["H100", "B200"]}),
        ])],
    ) -> HardwareComparison:
        chosen = await database.run(fit_for, data.request)
        return await asyncio.to_thread(_compare, chosen, data)
