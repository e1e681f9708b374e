#!/usr/bin/env bash
# Synthesise the demo hotline's prompts from their texts and write them as 8 kHz mono 16-bit
# PCM WAV files, normalised to -3 dB.
#
# Usage: scripts/make-prompts.sh
#   Run from the repository root; needs espeak-ng, sox (with soxi) and python3 (3.11+, for tomllib).
#   On Debian: apt-get install espeak-ng sox python3
#
# The texts are in prompts/texts.toml (language-neutral prompts) and prompts/<lang>/texts.toml
# (one per language), each a flat TOML table `name = "text"`. An entry makes
#   prompts/<lang>/<name>.wav    from prompts/<lang>/texts.toml ("say/x" makes prompts/<lang>/say/x.wav)
#   prompts/<name>.wav           from prompts/texts.toml
# Entries of prompts/texts.toml are either
#   "@tone:FREQ:MS"              a sine tone of FREQ Hz lasting MS ms, peak -6 dB,
#   "@music:SECONDS"             a soft melody of that length for callers waiting in a queue, or
#   "Mandarin text || English"   both spoken, Mandarin first, 0.3 s of silence between.
# "say/*" words (played one after another to speak numbers, amounts and dates) have their
# leading and trailing silence trimmed, unless that would leave less than 0.1 s.
#
# Mandarin: espeak-ng 1.51 (Debian 12) turns Chinese characters into tone-numbered pinyin and
# then, with the `cmn` voice, reads that pinyin by English rules ("好" comes out as "hao two").
# The `cmn-latn-pinyin` voice reads the same pinyin as Mandarin, so that is the voice used. It
# reads Latin letters as pinyin too, so Mandarin texts must not hold English words. espeak-ng also
# reads each character alone, with its most common reading; ZH_READINGS below gives pinyin for
# the words in our texts that it gets wrong, and is applied to Mandarin text just before speaking.
set -euo pipefail

usage() { sed -n 's/^# \{0,1\}//; 5,7p' "$0"; }
case $# in
  0) ;;
  *) if [[ $1 == -h || $1 == --help ]]; then usage; exit 0; fi
     usage >&2; exit 2 ;;
esac

die() { echo "make-prompts: $*" >&2; exit 1; }
[[ -d prompts && -d scripts ]] || die "run from the repository root (no prompts/ or scripts/ here)"
for tool in espeak-ng sox soxi python3; do
  command -v "$tool" >/dev/null || die "needs $tool (apt-get install espeak-ng sox python3)"
done
python3 -c 'import tomllib' 2>/dev/null || die "needs python3 3.11 or later (tomllib)"

declare -A VOICE=([zh]=cmn-latn-pinyin [en]=en-us)
SPEED=150

# Words whose reading espeak-ng gets wrong, as "word=replacement" (longest first where they overlap).
ZH_READINGS=(
  "欢迎=huan1 ying2"      # 欢 otherwise neutral-toned
  "服务=fu2 wu4"          # 务 otherwise neutral-toned
  "投诉=tou2 su4"         # 诉 otherwise neutral-toned
  "节假日=jie2 jia4 ri4"  # 假 jià (holiday), not jiǎ (false)
  "重听=chong2 ting1"     # 重 chóng (again), not zhòng (heavy)
  "重新=chong2 xin1"
  "余额为=余额 wei2"      # 为 wéi (is), not wèi (for)
  "日期为=日期 wei2"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# SoX's -R makes dither repeatable, so remaking unchanged texts gives byte-identical files.
SOX=(sox -R)

zh_readings() {
  local text=$1 pair
  for pair in "${ZH_READINGS[@]}"; do
    text=${text//"${pair%%=*}"/"${pair#*=}"}
  done
  printf '%s' "$text"
}

# speak LANG TEXT OUT: espeak-ng's own output (22050 Hz mono) for TEXT in LANG.
speak() {
  local lang=$1 text=$2 out=$3
  [[ -n ${VOICE[$lang]:-} ]] || die "no voice for language '$lang' (known: ${!VOICE[*]})"
  [[ $lang == zh ]] && text=$(zh_readings "$text")
  printf '%s' "$text" | espeak-ng -v "${VOICE[$lang]}" -s "$SPEED" --stdin -w "$out"
}

# finish IN OUT: convert to 8 kHz mono 16-bit, normalised to -3 dB. Resampled first (with 6 dB of
# headroom, as espeak-ng peaks at full scale and the filter overshoots), so the normalised peak is
# the one in the file.
finish() {
  "${SOX[@]}" "$1" -r 8000 -c 1 -b 16 "$2" gain -6 rate 8000 norm -3
}

# trim IN OUT: cut leading and trailing silence; keeps IN as it is if less than 0.1 s would be left.
trim() {
  local in=$1 out=$2
  "${SOX[@]}" "$in" "$out" silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
  if awk -v d="$(soxi -D "$out")" 'BEGIN { exit !(d < 0.1) }'; then
    echo "  (trimming $3 left under 0.1 s: kept untrimmed)"
    cp "$in" "$out"
  fi
}

# entries FILE: each entry of a texts.toml as NAME NUL TEXT NUL.
entries() {
  python3 - "$1" <<'PY'
import re, sys, tomllib
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        table = tomllib.load(f)
except tomllib.TOMLDecodeError as e:
    sys.exit(f"{path}: {e}")
for name, text in table.items():
    if not re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_]+)?", name):
        sys.exit(f"{path}: prompt name {name!r}: use a-z, 0-9 and _, with at most one '/'")
    if not isinstance(text, str) or not text.strip() or any(c in text for c in "\0\n\r"):
        sys.exit(f"{path}: {name}: the text must be a one-line, non-empty string")
    sys.stdout.buffer.write(f"{name}\0{text}\0".encode())
PY
}

written=0
declare -A made=()
while IFS= read -r texts; do
  dir=${texts%/texts.toml}
  lang=${dir#prompts}
  lang=${lang#/}
  [[ $lang != */* ]] || die "$texts: texts go in prompts/texts.toml or prompts/<lang>/texts.toml"
  [[ -z $lang || -n ${VOICE[$lang]:-} ]] || die "$texts: no voice for language '$lang' (known: ${!VOICE[*]})"
  entries "$texts" >"$tmp/entries"
  while IFS= read -r -d '' name && IFS= read -r -d '' text; do
    out=$dir/$name.wav
    mkdir -p "$(dirname "$out")"
    rm -f "$tmp"/*.wav
    if [[ -z $lang ]]; then
      if [[ $text =~ ^@tone:([0-9]+):([0-9]+)$ ]]; then
        freq=${BASH_REMATCH[1]} ms=$((10#${BASH_REMATCH[2]}))
        ((ms > 0)) || die "$texts: $name: a tone needs a length"
        secs=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
        # 5 ms fades keep the tone's ends from clicking.
        "${SOX[@]}" -n -r 8000 -c 1 -b 16 "$out" synth "$secs" sine "$freq" fade 0.005 "$secs" 0.005 norm -6
      elif [[ $text =~ ^@music:([0-9]+)$ ]]; then
        secs=$((10#${BASH_REMATCH[1]}))
        ((secs > 0)) || die "$texts: $name: music needs a length"
        # Broken chords of I-vi-IV-V, each note a plucked string with a little reverb, looped
        # to the length: pleasant enough, and it loops without a seam.
        notes=(C4 E4 G4 E4 A3 C4 E4 C4 F3 A3 C4 A3 G3 B3 D4 B3)
        parts=()
        for i in "${!notes[@]}"; do
          "${SOX[@]}" -n -r 8000 -c 1 -b 16 "$tmp/note$i.wav" synth 0.5 pluck "${notes[$i]}" fade 0 0.5 0.2
          parts+=("$tmp/note$i.wav")
        done
        "${SOX[@]}" "${parts[@]}" "$tmp/bar.wav"
        "${SOX[@]}" "$tmp/bar.wav" "$tmp/long.wav" repeat $(((secs + 7) / 8))
        "${SOX[@]}" "$tmp/long.wav" "$out" trim 0 "$secs" reverb 30 norm -12
      elif [[ $text == *" || "* ]]; then
        zh_text=${text%% || *} en_text=${text#* || }
        [[ $en_text != *" || "* ]] || die "$texts: $name: more than one ' || '"
        speak zh "$zh_text" "$tmp/zh.wav"
        speak en "$en_text" "$tmp/en.wav"
        "${SOX[@]}" "$tmp/zh.wav" "$tmp/zh-pad.wav" pad 0 0.3
        "${SOX[@]}" "$tmp/zh-pad.wav" "$tmp/en.wav" "$tmp/both.wav"
        finish "$tmp/both.wav" "$out"
      else
        die "$texts: $name: a language-neutral prompt is \"@tone:FREQ:MS\" or \"Mandarin || English\""
      fi
    else
      speak "$lang" "$text" "$tmp/raw.wav"
      if [[ $name == say/* ]]; then
        trim "$tmp/raw.wav" "$tmp/trimmed.wav" "$out"
        finish "$tmp/trimmed.wav" "$out"
      else
        finish "$tmp/raw.wav" "$out"
      fi
    fi
    [[ -z ${made[$out]:-} ]] || die "$out is made by two entries"
    made[$out]=1
    printf '%s\t%6.2f s\n' "$out" "$(soxi -D "$out")"
    written=$((written + 1))
  done <"$tmp/entries"
done < <(find prompts -name texts.toml | LC_ALL=C sort)
((written > 0)) || die "no texts.toml under prompts/"

# Check every WAV under prompts/: readable, 8 kHz mono 16-bit, not empty.
bad=0
while IFS= read -r wav; do
  if ! err=$(soxi "$wav" 2>&1 >/dev/null); then
    echo "make-prompts: $wav is not readable: $err" >&2; bad=1; continue
  fi
  rate=$(soxi -r "$wav") channels=$(soxi -c "$wav") bits=$(soxi -b "$wav") samples=$(soxi -s "$wav")
  if [[ $rate != 8000 || $channels != 1 || $bits != 16 || $samples == 0 ]]; then
    echo "make-prompts: $wav is $rate Hz, $channels channel(s), $bits-bit, $samples samples" >&2; bad=1
  fi
  [[ -n ${made[$wav]:-} ]] || echo "make-prompts: note: $wav has no entry in any texts.toml (left as it is)" >&2
done < <(find prompts -name '*.wav' | LC_ALL=C sort)
((bad == 0)) || die "some WAV files are not as they should be"
echo "$written prompts written; every WAV under prompts/ checked with soxi"
