#!/usr/bin/env bash
# Run HERE (a machine that reaches the package registry), in the repository root, before benchmarks/gpu_check.sh:
# downloads the wheels that the GPU machine's image lacks (or has in other versions) into .whl/
# (git-ignored), for CPython 3.12 on x86-64. Name .whl in the device run's `carry`.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl
common=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl)
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# fairforge_attr's own needs missing there, the captum under test, and the transformers the
# CPU results were measured with (the image's 5.17 also works; this keeps both runs equal).
"$PY" -m pip download -q "${common[@]}" "${platforms[@]}" \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0 pysbd==0.3.4 captum==0.9.0 transformers==5.24.0
ls -la .whl
du -sh .whl
