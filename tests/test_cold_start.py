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
