"""How much memory a method may plan with: a CUDA device's, or the host's."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def available_bytes(device: torch.device) -> int:
    """Bytes ``device`` can still give: on CUDA the driver's free count plus what torch's
    allocator holds unused; on the host, the kernel's ``MemAvailable`` (which counts the
    page cache it can reclaim, unlike "free" pages), else the free pages, else 4 GiB."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30
