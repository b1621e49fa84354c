"""Which stages pull in fair-esm: training an SAE and reading shards must not."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["protsae.sae", "protsae.sae.train", "protsae.activations", "protsae.device"]
)
def test_module_does_not_import_fair_esm(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m == 'esm' or m.startswith(('esm.', 'protsae.esm')))\n"
        "print(','.join(loaded))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "", f"importing {module} loaded {run.stdout.strip()}"


def test_esm_package_reexports_the_public_api() -> None:
    import protsae.esm as pesm
    from protsae import device

    for name in pesm.__all__:
        assert hasattr(pesm, name), name
    assert pesm.resolve_device is device.resolve_device
