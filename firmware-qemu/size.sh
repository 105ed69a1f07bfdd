#!/usr/bin/env bash
# The RAM account of one firmware build, from its ELF and its painted-stack report.
# Usage: firmware-qemu/size.sh BOARD ELF LOG RAM_BYTES ARENA_LIMIT OTHER_LIMIT
#   flash: .vector_table + .text + .rodata (+ .data's load image);
#   RAM: the arena (the ARENA static), other .bss/.data/.uninit, and the stack peak the
#   firmware measured (the "SIZE stack_peak N" line of its log; whole stack, main included).
# Fails when total RAM exceeds arena + 16 KiB, the board's RAM, or the board's limits for the
# arena and for everything else (0 = no limit).
set -euo pipefail
board=$1 elf=$2 log=$3 ram=$4 arena_limit=$5 other_limit=$6
sec() { llvm-size -A "$elf" | awk -v s="$1" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'; }
text=$(sec .text) rodata=$(sec .rodata) vectors=$(sec .vector_table) data=$(sec .data) bss=$(sec .bss) uninit=$(sec .uninit)
arena_hex=$(llvm-nm -S -C "$elf" | awk '$4 ~ /::ARENA::/ && !f { print $2; f = 1 }')
arena=${arena_hex:+$((16#$arena_hex))}
stack=$(sed -n 's/^SIZE stack_peak \([0-9]*\).*/\1/p' "$log" | tail -1)
[ -n "$arena" ] && [ -n "$stack" ] || { echo "firmware-size: no ARENA symbol in $elf or no stack line in $log" >&2; exit 1; }
flash=$((vectors + text + rodata + data))
other=$((data + bss + uninit - arena))
total=$((arena + other + stack))
goal=$((arena + 16 * 1024))
printf '%s\n' "== $board"
printf '  %-34s %9d B\n' "flash: .text" "$text" "flash: .rodata" "$rodata" "flash: vectors + .data image" "$((vectors + data))" "flash total" "$flash"
printf '  %-34s %9d B\n' "RAM: arena" "$arena" "RAM: other .bss + .data" "$other" "RAM: stack peak (painted)" "$stack"
printf '  %-34s %9d B  (goal <= arena + 16 KiB = %d B; board RAM %d B)\n' "RAM total" "$total" "$goal" "$ram"
fail=0
[ "$total" -le "$goal" ] || { echo "  FAIL: RAM total $total B exceeds arena + 16 KiB ($goal B)"; fail=1; }
[ "$total" -le "$ram" ] || { echo "  FAIL: RAM total $total B exceeds the board's $ram B"; fail=1; }
[ "$arena_limit" = 0 ] || [ "$arena" -le "$arena_limit" ] || { echo "  FAIL: arena $arena B exceeds $arena_limit B"; fail=1; }
[ "$other_limit" = 0 ] || [ $((other + stack)) -le "$other_limit" ] || { echo "  FAIL: stack + other RAM $((other + stack)) B exceeds $other_limit B"; fail=1; }
exit $fail
