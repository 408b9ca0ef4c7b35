#!/usr/bin/env bash
# The tests that train, resume, export, calibrate or compare models in one process (the torchrun ones run once,
# in the suite, to keep CI short), run as another CPU would: torch's kernels forced down to ATEN_CPU_CAPABILITY
# (default: no vector kernels), oneDNN's to ONEDNN_MAX_CPU_ISA
# (default SSE41), on one thread. The same seed then trains other weights than on this machine's own
# kernels, so a test that holds only for the weights one CPU happens to train fails here. Tests marked one_cpu
# (pyproject.toml) are left out: what kernels could change in them, another test here checks. .ci/run calls it
# after the whole suite; extra arguments go to pytest.
#
#   scripts/test_as_other_cpu.sh                                   # as .ci/run runs it
#   ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 scripts/test_as_other_cpu.sh   # an AVX2 machine, on an AVX-512 one
set -euo pipefail
cd "$(dirname "$0")/.."
export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-default}"
export ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-SSE41}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -c "import torch; print('as another CPU: torch CPU capability', torch.backends.cpu.get_cpu_capability(), \
'| oneDNN up to', '$ONEDNN_MAX_CPU_ISA', '| threads', torch.get_num_threads())"
python -m pytest -p no:cacheprovider -m "not one_cpu" "$@" \
    tests/test_train.py tests/test_resume.py tests/test_export.py tests/test_bundled.py \
    tests/test_calibration.py tests/test_definitions.py tests/test_model.py tests/test_evaluate.py \
    tests/test_real_handwriting.py tests/test_polarity.py tests/test_predict.py
