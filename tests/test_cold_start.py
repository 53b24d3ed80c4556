"""What keeps a cold `mmrec` process short: heavy modules nobody calls are not imported,
and deferring them changes nothing for code that does use them. Each check runs in a
fresh interpreter (the state under test is sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lancedb_opens_a_catalog_without_its_rest_client_until_that_is_used(tmp_path):
    got = _run(
        "import json, sys\n"
        "from mmrec.catalog.lancedb_lazy import DEFERRED, import_lancedb\n"
        f"db = import_lancedb().connect({str(tmp_path / 'db')!r})\n"
        "db.create_table('t', data=[{'x': 1}]); rows = db.open_table('t').to_arrow().num_rows\n"
        "api_before = DEFERRED + '.api.table_api' in sys.modules\n"
        "client = sys.modules[DEFERRED].ApiClient  # first attribute: the package body runs\n"
        "print(json.dumps({'rows': rows, 'api_before': api_before, 'client': client.__name__,\n"
        "                  'api_after': DEFERRED + '.api.table_api' in sys.modules}))")
    assert got == {"rows": 1, "api_before": False, "client": "ApiClient", "api_after": True}


def test_models_load_without_scikit_learn_which_stays_importable():
    got = _run(
        "import json, sys\n"
        "from mmrec.extractors import load_extractor\n"
        "e = load_extractor('minilm'); v = e.embed_text(['a text'])\n"
        "loaded = 'sklearn' in sys.modules\n"
        "import sklearn.metrics\n"
        "from transformers.utils.import_utils import is_sklearn_available\n"
        "print(json.dumps({'dim': int(v.shape[1]), 'sklearn_loaded': loaded,\n"
        "                  'importable': callable(sklearn.metrics.roc_curve),\n"
        "                  'transformers_sees_it': is_sklearn_available()}))")
    assert got == {"dim": 384, "sklearn_loaded": False, "importable": True, "transformers_sees_it": True}


def test_the_cli_starts_without_numpy():
    got = _run("import json, sys; import mmrec.cli; print(json.dumps(sorted("
               "m for m in ('numpy', 'pyarrow', 'lancedb', 'torch') if m in sys.modules)))")
    assert got == []


def test_the_console_script_exits_fast_with_every_byte_and_exit_code(tmp_path):
    """`mmrec` ends with os._exit after the command (skipping ~1.2 s of teardown): its
    piped output must still arrive whole, and the exit code be click's."""
    from pathlib import Path

    script = Path(sys.executable).parent / "mmrec"
    assert "mmrec.cli import run" in script.read_text()
    big = subprocess.run([script, "extractors", "--json"], capture_output=True, text=True)
    assert big.returncode == 0 and json.loads(big.stdout)  # the whole JSON document, flushed
    missing = subprocess.run([script, "stats", "--db", str(tmp_path / "none")], capture_output=True,
                             text=True)
    assert missing.returncode == 1 and "no mmrec catalog here" in missing.stderr
    bad = subprocess.run([script, "query", "--no-such-option"], capture_output=True, text=True)
    assert bad.returncode == 2 and "No such option" in bad.stderr
    helped = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert helped.stdout.startswith("Usage: mmrec")
