#!/usr/bin/env bash
# git on a generated repository, on the system allocator and under
# LD_PRELOAD=libjsmalloc.so: the same scenario (commits, branches, a merge, a rebase,
# gc, repack, clone, then log/diff/blame/...) twice; every git command's output, exit
# status and stderr must be the same, and jsmalloc must have served git.
#
# Usage: git.sh <libjsmalloc.so> <work dir>
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
programs_setup "$1" "$2"

command -v git >/dev/null || skip "no git"

# Nothing from the machine or the caller: no system or user config, fixed identities,
# and dates set by tick(), so both runs make the same objects.
for var in $(env | sed -n 's/^\(GIT_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
unset XDG_CONFIG_HOME EMAIL
export HOME=$WORK/home GIT_CONFIG_NOSYSTEM=1 GIT_PAGER=cat PAGER=cat GIT_EDITOR=true
export GIT_TERMINAL_PROMPT=0 GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
export GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com
mkdir -p "$HOME"
cat >"$HOME/.gitconfig" <<'CONFIG'
[init]
	defaultBranch = main
[gc]
	auto = 0
	autoDetach = false
[maintenance]
	auto = false
[advice]
	detachedHead = false
[color]
	ui = false
[core]
	pager = cat
CONFIG

# G <git arguments...>: runs git (through $RUNNER), logging the command, its output and
# its exit status to the transcript and its stderr to the error log.
G() {
  local status=0
  printf '$ git %s\n' "$*" >>"$TRANSCRIPT"
  "${RUNNER[@]}" git "$@" >>"$TRANSCRIPT" 2>>"$ERRORS" || status=$?
  printf '[exit %d]\n' "$status" >>"$TRANSCRIPT"
}

tick() {
  NOW=$((NOW + 3607))
  export GIT_AUTHOR_DATE="@$NOW +0000" GIT_COMMITTER_DATE="@$NOW +0000"
}

# write_files <rev> <first dir> <last dir> <modulus> <residue>: (re)writes the files
# d<first..last>/fNNN.txt whose number is <residue> modulo <modulus>, as of revision <rev>:
# most lines stay, some change with the revision, lengths vary.
write_files() {
  awk -v rev="$1" -v first="$2" -v last="$3" -v m="$4" -v r="$5" 'BEGIN {
    for (d = first; d <= last; d++) {
      for (f = 0; f < 30; f++) {
        if ((d * 30 + f) % m != r) continue
        path = sprintf("d%d/f%03d.txt", d, f)
        n = 40 + (d * 31 + f * 17 + rev * 7) % 80
        for (i = 0; i < n; i++) {
          tag = ((i + f) % 5 == rev % 5) ? "rev " rev : "base"
          printf "line %d of %s (%s) %s\n", i, path, tag, substr("lorem ipsum dolor sit amet consectetur", 1, (i * 7 + d) % 38) > path
        }
        close(path)
      }
    }
  }'
}

# The scenario, run in $WORK/repo with git run through $RUNNER.
scenario() {
  NOW=1700000000
  mkdir "$WORK/repo"
  cd "$WORK/repo"
  G init -q
  mkdir d0 d1 d2 d3 d4 d5 d6 d7 d8 d9
  write_files 0 0 9 1 0
  tick; G add -A; G commit -q -m "Initial tree: 300 files"
  G tag base
  for rev in 1 2; do
    write_files "$rev" 0 4 7 "$rev"
    tick; G commit -q -a -m "main: revision $rev"
  done
  G checkout -q -b feature
  for rev in 3 4 5 6; do
    write_files "$rev" 5 9 5 $((rev % 5))
    printf 'feature file %d\n' "$rev" >"d9/new-$rev.txt"
    tick; G add -A; G commit -q -m "feature: revision $rev"
  done
  G checkout -q main
  for rev in 7 8 9; do
    write_files "$rev" 0 4 7 $((rev % 7))
    tick; G commit -q -a -m "main: revision $rev"
  done
  G mv d1/f001.txt d1/renamed.txt
  G rm -q d2/f011.txt d2/f012.txt
  tick; G commit -q -m "main: rename and remove"
  tick; G merge -q --no-ff -m "Merge branch feature" feature
  G checkout -q -b topic base
  mkdir t
  awk 'BEGIN { for (i = 0; i < 500; i++) print "topic line " i > "t/notes.txt" }'
  tick; G add t; G commit -q -m "topic: notes"
  tick; G rebase -q main
  G checkout -q main
  G merge -q --ff-only topic
  tick; G tag -a -m "release 1" v1.0
  G gc -q
  G repack -a -d -f -q --window=50 --depth=20
  G gc -q --prune=now
  G fsck --full --strict
  G clone -q --no-local . ../clone
  G -C ../clone log --oneline --all
  G log --stat
  G log --graph --oneline --all --decorate
  G log -p --follow -- d1/renamed.txt
  G shortlog -sn --all
  G describe --tags
  G diff --stat base v1.0
  G diff base main -- d0 d5
  G diff -M --summary base main
  G diff --word-diff HEAD~2 HEAD -- d0/f000.txt
  G show --stat HEAD^
  G blame -s d0/f007.txt
  G blame -s -M -C d1/renamed.txt
  G grep -c "rev 7"
  G ls-tree -r -l v1.0
  G rev-list --objects --all
  G cat-file --batch-check --batch-all-objects
  G format-patch --stdout base..main~1 -- d3
  G status --porcelain=v2 --branch
  G archive -o ../archive.tar v1.0
  sha256sum ../archive.tar | cut -d' ' -f1 >>"$TRANSCRIPT"
  cd "$WORK"
}

for allocator in system jsmalloc; do
  TRANSCRIPT=$WORK/$allocator.out
  ERRORS=$WORK/$allocator.err
  RUNNER=()
  [ "$allocator" = jsmalloc ] && RUNNER=(under_jsmalloc)
  : >"$TRANSCRIPT"
  : >"$ERRORS"
  scenario
  # The second run works in the same place, so that no path differs.
  mv "$WORK/repo" "$WORK/repo.$allocator"
  mv "$WORK/clone" "$WORK/clone.$allocator"
  rm -f "$WORK/archive.tar"
done

# What the serving side of the clone (git upload-pack) writes to stderr, its statistics
# included, reaches the clone's stderr with "remote: " before it and padded with blanks.
for allocator in system jsmalloc; do
  sed -e 's/^remote: //' -e 's/[[:space:]]*$//' "$WORK/$allocator.err" >"$WORK/$allocator.stderr"
done
same_file "$WORK/system.out" "$WORK/jsmalloc.out" "git"
same_stderr "$WORK/system.stderr" "$WORK/jsmalloc.stderr" "git"
check_jsmalloc_served "$WORK/jsmalloc.stderr" "git"
commands=$(grep -c '^\$ git ' "$WORK/jsmalloc.out")
failed=$(grep -vc '^\[exit 0\]$' <(grep '^\[exit ' "$WORK/jsmalloc.out") || true)
[ "$failed" -eq 0 ] || fail "git: $failed command(s) exited non-zero, on both allocators (see $WORK/system.out)"
echo "git: $commands commands, $(wc -l <"$WORK/jsmalloc.out") lines of output, the same on both allocators"
cd / && rm -rf "$WORK"
