"""loadtests/cpu.py: who counts as the generator, and that a busy child is measured."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from loadtests.cpu import CpuMeter, descendants

BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"


def test_descendants_include_grandchildren() -> None:
    # A child that starts a sleeping grandchild and waits for it.
    code = (
        "import subprocess as s, sys; s.run([sys.executable, '-c', 'import time; time.sleep(3)'])"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        found: set[int] = set()
        for _ in range(50):
            found = descendants(os.getpid())
            if len(found) >= 2:
                break
            time.sleep(0.1)
        assert child.pid in found
        assert len(found - {child.pid}) >= 1  # the grandchild
    finally:
        child.kill()
        child.wait()


async def test_busy_children_count_as_the_generator_services_do_not() -> None:
    service = await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY)
    meter = CpuMeter(service.pid, {service.pid})
    meter.start()
    generator = await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY)
    await generator.wait()
    await service.wait()
    figures = await meter.stop()
    # The generator burned ~0.6 s of CPU during the measured interval; the service's CPU is
    # reported as the engine's, not the generator's.
    assert figures["generator_cpu_percent"] is not None
    assert figures["generator_cpu_percent"] > 0
    assert figures["engine_cpu_percent"] is not None
    assert figures["engine_cpu_percent"] > 0
