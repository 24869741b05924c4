# Shared by run-fuzz.sh and run-regress.sh: what each target reads.
# fuzz_inputs NAME sets FUZZ_DIRS (seed and regression directories, read
# only) and FUZZ_ARGS (the target's libFuzzer options).
fuzz_inputs() {
    local short=${1#fuzz_}
    FUZZ_DIRS=() FUZZ_ARGS=()
    export NESTLS_CERTS=$REPO/certs
    # The targets' scratch files (fuzz_policy writes each input there); the
    # caller removes the directory, also after a crash.
    export FUZZ_TMPDIR=$FUZZ_SCRATCH
    case $short in
        policy)
            # Every policy of the repository: the examples and the fixtures.
            FUZZ_DIRS=(policy tests/fixtures/policy)
            FUZZ_ARGS=(-max_len=8192 -dict=tests/fuzz/policy.dict)
            ;;
        onion)
            python3 tests/fuzz/onion_seeds.py build-fuzz/seeds/onion || return 1
            FUZZ_DIRS=(build-fuzz/seeds/onion)
            FUZZ_ARGS=(-max_len=4096)
            ;;
        *)
            echo "fuzz: no inputs known for $1" >&2
            return 1
            ;;
    esac
    [[ ! -d tests/fuzz/regressions/$short ]] || FUZZ_DIRS+=("tests/fuzz/regressions/$short")
    # Reports name source lines; leaks are findings too (libFuzzer's default).
    local symbolizer
    symbolizer=$(command -v llvm-symbolizer || true)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1${symbolizer:+:external_symbolizer_path=$symbolizer}}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
}
