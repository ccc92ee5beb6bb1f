#!/usr/bin/env bash
# Builds and runs the chat room on memory:// (or the URL given), then open the printed
# address in a browser. Extra arguments go to broadcaster-chat, e.g.
#   scripts/demo.sh --port 8080
#   scripts/demo.sh --broadcast redis://127.0.0.1:6379
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" --parallel 2 --target broadcaster-chat
exec "$root/build/examples/chatroom/broadcaster-chat" --broadcast memory:// "$@"
