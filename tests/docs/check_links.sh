#!/usr/bin/env bash
# Checks that every relative link in README.md and docs/**/*.md points to a file or
# directory that exists and, with a #fragment into a Markdown file, to one of its
# headings (GitHub's anchors). Links inside code (fenced blocks, `spans`) are not links.
#   check_links.sh SOURCE_DIR
set -euo pipefail
root=${1:?usage: check_links.sh SOURCE_DIR}
cd "$root"

# The text of a Markdown file outside fenced code blocks, with code spans removed.
prose() {
  awk '/^[[:space:]]*```/ { fenced = !fenced; next } !fenced' "$1" | sed 's/`[^`]*`//g'
}

# GitHub's anchors of a file's headings: lower case, punctuation dropped, spaces to '-',
# a repeated anchor suffixed -1, -2, ...
anchors() {
  awk '/^[[:space:]]*```/ { fenced = !fenced; next } !fenced && /^#+ /' "$1" |
    sed -E 's/^#+ +//; s/ +#*$//' | tr '[:upper:]' '[:lower:]' |
    sed -E 's/[][!"#$%&'"'"'()*+,./:;<=>?@\\^`{|}~]//g; s/ /-/g' |
    awk '{ n = seen[$0]++; print (n ? $0 "-" n : $0) }'
}

failures=0
checked=0
while IFS= read -r -d '' page; do
  dir=$(dirname "$page")
  while IFS= read -r target; do
    checked=$((checked + 1))
    [[ $target =~ ^[a-z][a-z0-9+.-]*: ]] && continue  # http:, https:, mailto:
    path=${target%%#*}
    fragment=
    [[ $target == *#* ]] && fragment=${target#*#}
    file=$page
    if [[ -n $path ]]; then
      file=$(realpath -m --relative-to=. "$dir/$path")
    fi
    if [[ ! -e $file ]]; then
      echo "$page: broken link $target ($file does not exist)"
      failures=$((failures + 1))
      continue
    fi
    if [[ -n $fragment && $file == *.md ]] && ! anchors "$file" | grep -qxF "$fragment"; then
      echo "$page: broken link $target (no heading '#$fragment' in $file)"
      failures=$((failures + 1))
    fi
  done < <(prose "$page" | grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\(//; s/\)$//')
done < <(find README.md docs -name '*.md' -print0 | sort -z)

echo "$checked links checked, $failures broken"
((failures == 0))
