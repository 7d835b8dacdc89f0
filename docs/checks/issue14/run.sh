#!/usr/bin/env bash
# Issue #14's bug tests against the code the issue was filed on: each must FAIL there, at the bug.
#   docs/checks/issue14/run.sh [OLD_COMMIT]   (default aa14869; ~6 minutes on 2 cores; the
#   project's virtualenv active, moto installed: pip install -e ".[dev]")
# The tests are main's (tests/sft/test_train_loop.py, tests/labeling/test_stages.py,
# tests/test_s3.py) with imports pointed at what the old tree had; see check_old_code.py.
set -uo pipefail
OLD=${1:-aa14869}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$HERE" rev-parse --show-toplevel)
WORK=$(mktemp -d)
trap 'git -C "$REPO" worktree remove --force "$WORK/old" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
git -C "$REPO" worktree add --detach "$WORK/old" "$OLD" >/dev/null
# model directories from THIS tree's factory: the old one cannot build a Llama-3-style no-pad tokenizer
(cd "$REPO" && PYTHONPATH="$REPO" python -c "
from tests.sft.helpers import build_small_model
build_small_model('$WORK/models/nopad', pad_token=False)
build_small_model('$WORK/models/padded', pad_token=True)") >/dev/null 2>&1
mkdir -p "$WORK/old/tests/verify14"
touch "$WORK/old/tests/verify14/__init__.py"
cp "$HERE"/check_old_code.py "$WORK/old/tests/verify14/"
# main's test helpers, pointed at what the old tree had: the prebuilt models, AutoTokenizer
python - "$REPO/tests/sft" "$WORK/old/tests/verify14" <<'PY'
import sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
helpers = (src / "helpers.py").read_text()
start, end = helpers.index("def build_small_model"), helpers.index("def equal_answer_batch")
helpers = helpers[:start] + (
    "def build_small_model(out_dir, pad_token: bool) -> str:\n"
    "    import os\n\n"
    "    return os.path.join(os.environ['VERIFY14_MODELS'], 'padded' if pad_token else 'nopad')\n\n\n"
) + helpers[end:]
(dst / "helpers.py").write_text(helpers)
workers = (src / "workers.py").read_text()
workers = workers.replace("from teduo_ray.llm.loading import load_tokenizer",
                          "from transformers import AutoTokenizer; load_tokenizer = AutoTokenizer.from_pretrained")
(dst / "workers.py").write_text(workers.replace("tests.sft.helpers", "tests.verify14.helpers"))
PY
cd "$WORK/old" && VERIFY14_MODELS="$WORK/models" PYTHONPATH="$WORK/old" \
  python -m pytest -p no:cacheprovider -o python_files='check_*.py' -q -rf tests/verify14/check_old_code.py
status=$?
echo "pytest exit status on $OLD: $status (expected 1: every test failed)"
