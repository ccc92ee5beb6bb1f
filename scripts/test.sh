#!/usr/bin/env bash
# Installs what the build needs, configures, builds and runs every test.
#
#   scripts/test.sh                          # the normal build, in build/
#   scripts/test.sh --sanitize=address,undefined
#   scripts/test.sh --sanitize=thread        # each sanitizer build gets its own directory
#
# Test servers (redis-server, PostgreSQL, the Kafka mock broker) are started and
# stopped by CTest fixtures on free loopback ports; nothing needs to run beforehand.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=""
for arg in "$@"; do
  case $arg in
    --sanitize=*) sanitize=${arg#--sanitize=} ;;
    *) echo "usage: $0 [--sanitize=address,undefined|thread]" >&2; exit 2 ;;
  esac
done

bash "$root/scripts/install-deps.sh"

build="$root/build${sanitize:+-${sanitize//,/-}}"
benchmarks=ON
examples=ON
kafka=ON
if [[ -n $sanitize ]]; then
  benchmarks=OFF  # sanitized timings mean nothing
  examples=OFF    # Beast TUs take minutes each under sanitizers; the library is what counts
fi
if [[ $sanitize == *thread* ]]; then
  # librdkafka starts its threads with C11 thrd_create, which ThreadSanitizer does not
  # intercept: its threads crash in TSan's allocator. Kafka is checked by ASan+UBSan.
  kafka=OFF
fi

# Sanitized builds are compiled with -O1 and line tables only: the usual choice for
# sanitizers, and half the compile time of -O2 -g.
flags=()
if [[ -n $sanitize ]]; then
  flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
fi

cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" \
  -DBROADCASTER_QUICK_TEST_BUILD=ON \
  -DBROADCASTER_WERROR=ON \
  -DBROADCASTER_SANITIZE="$sanitize" \
  -DBROADCASTER_BUILD_BENCHMARKS=$benchmarks \
  -DBROADCASTER_BUILD_EXAMPLES=$examples \
  -DBROADCASTER_WITH_KAFKA=$kafka
cmake --build "$build" --parallel 2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp}
cd "$build"
ctest --parallel 2 --output-on-failure --timeout 300
