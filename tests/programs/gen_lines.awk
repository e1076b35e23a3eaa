# Writes n lines of deterministic pseudo-random text for sort.sh: a signed number, a
# word-number key and a tail of varying length; about one line in four repeats one of a
# thousand common lines, so that sort -u has duplicates to drop.
# Usage: awk -v n=2000000 -f gen_lines.awk > file
function next_random() {
  # 32-bit linear congruential generator; every product stays below 2^53, so it is exact
  # in awk's doubles and the same file comes out of mawk and gawk.
  x = (x * 69069 + 1) % 4294967296
  return x
}
BEGIN {
  split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi", word, " ")
  tail = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"
  x = 20240601
  for (i = 0; i < n; i++) {
    r = next_random()
    if (r % 4 == 0) {
      common = int(r / 4) % 1000
      printf "%d common-%d\n", common * 37 - 18000, common
      continue
    }
    number = int(next_random() / 4096) % 2000003 - 1000000
    key = int(next_random() / 65536) % 16 + 1
    sub_key = int(next_random() / 256) % 5000
    len = int(next_random() / 16777216) % 60
    printf "%d %s-%d %s\n", number, word[key], sub_key, substr(tail, 1 + len % 20, len)
  }
}
