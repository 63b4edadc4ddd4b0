"""Device choice and per-device numerics: thread count and flush-denormal on CPU, the training precision.

Precision: "fp32", or "bf16" (autocast: matmuls, attention and the elementwise ops between them in bfloat16;
master weights, gradients, the optimizer, LayerNorm statistics and the loss stay fp32). "auto" resolves to
bf16 on CUDA devices that support it and on CPUs with bf16 matrix instructions (AMX or AVX512-BF16, read from
/proc/cpuinfo's flags), fp32 elsewhere: on other CPUs bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time

import torch

from fits.errors import BadInput
from verifier.runs import PRECISIONS  # what a run trains in; "auto" resolves to one of these


class DeviceError(BadInput):
    """The requested device is not usable here (``field`` is ``device``)."""

    def __init__(self, message: str, *, field: str | None = "device") -> None:
        super().__init__(message, field=field)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without CUDA → DeviceError."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("cuda was requested but CUDA is not available on this machine")
        if dev.index is None:  # an explicit index: set_device, DDP's device_ids and logs all want one
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{name} does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device type {dev.type!r} (use auto, cpu or cuda)")
    return dev


def configure(device: torch.device, *, threads: int | None = None) -> None:
    """Process-wide settings for fast, reproducible training on ``device``.

    CPU: one intra-op thread per available core (``threads`` overrides, e.g. cores / local ranks under
    DDP) and flush-denormal, because tiny gradients late in training otherwise fall into denormal floats
    that are orders of magnitude slower. CUDA: TF32 for any fp32 matmul left outside autocast.
    """
    if device.type == "cpu":
        torch.set_num_threads(max(1, threads or cpu_count()))
        torch.set_flush_denormal(True)
        _keep_freed_memory()
    else:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def flush_denormal_enabled() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero (it multiplies one and looks)."""
    return bool((torch.tensor([1e-40], dtype=torch.float32) * 1.0).item() == 0.0)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """glibc: serve activation-sized blocks (up to 32 MiB) from the heap and never hand freed memory back.

    PyTorch's CPU allocator does not cache, so with glibc's defaults every training step maps fresh pages
    for its activations and gradients and pays a page fault per 4 KiB of them. Other C libraries: no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError):
        pass


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs whose bf16 matmuls run in hardware (oneDNN uses them), faster than fp32."""


def cpu_bf16_flags(cpuinfo: str) -> set[str]:
    """The CPU_BF16_FLAGS present in a /proc/cpuinfo text (the first ``flags`` line; cores are alike)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split()) & set(CPU_BF16_FLAGS)
    return set()


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU (or the given /proc/cpuinfo text) has AMX or AVX512-BF16."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux: no way to tell cheaply, so the safe choice
            return False
    return bool(cpu_bf16_flags(cpuinfo))


def resolve_precision(precision: str, device: torch.device | str, *, cpuinfo: str | None = None) -> str:
    """"auto" → "bf16" on CUDA with bf16 support and on CPUs with AMX / AVX512-BF16, else "fp32"; "fp32" and
    "bf16" are returned as given (bf16 is allowed anywhere: it is only slow where the hardware lacks it)."""
    if precision in PRECISIONS:
        return precision
    if precision != "auto":
        raise BadInput(f"must be auto, fp32 or bf16, got {precision!r}", field="precision")
    dev = torch.device(device) if isinstance(device, str) else device
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16(cpuinfo) else "fp32"


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """bf16 autocast for a "bf16" run on ``device``; no autocast (fp32) for an "fp32" one.

    The weight-cast cache stays on (it is per autocast region: one forward pass casts each weight once).
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def available_memory(device: torch.device) -> int:
    """Bytes that a new allocation can use now: free GPU memory, or MemAvailable on the host."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_flops(device: torch.device, *, n: int = 2048, dtype: torch.dtype = torch.float32,
                         repeats: int = 10, trials: int = 3) -> float:
    """Achieved FLOP/s of an n×n matmul on ``device`` (best of ``trials``), a practical peak for MFU."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 2.0 * n**3 / best


# Dense bf16 tensor-core peaks from the vendors' data sheets, for MFU on GPUs.
_GPU_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12,
                  "L4": 121e12, "4090": 165e12, "3090": 71e12, "V100": 125e12}


def gpu_peak_flops(device: torch.device) -> float | None:
    """Data-sheet dense bf16 peak of a known GPU (H100 PCIe reports its own, lower number), else None."""
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756e12
    for key, peak in _GPU_BF16_PEAK.items():
        if key in name:
            return peak
    return None
