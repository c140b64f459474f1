#!/usr/bin/env bash
# Regenerates the bench's spoken utterances and their manifest (needs Debian's espeak-ng and sox; the bench only
# reads the committed WAVs and manifest.json). Every clip is 16 kHz mono 16-bit PCM, silence trimmed at both ends
# (threshold 0.5 % of full scale, as test/fixtures/make-fixtures.sh), so a clip's voiced audio starts at 0 ms and
# ends at its last sample. Clips with a mid-sentence pause are two trimmed clips joined by digital silence; the
# manifest gives the pause's position in ms. Run it from anywhere: `bash bench/utterances/make.sh`.
set -euo pipefail
cd "$(dirname "$0")"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
RATE=16000
SPEED=165
VOICE=en-us

# say OUT TEXT: speak TEXT into OUT (16 kHz mono, trimmed).
say() {
  espeak-ng -v "$VOICE" -s "$SPEED" -w "$TMP/raw.wav" "$2"
  sox "$TMP/raw.wav" -r "$RATE" -c 1 -b 16 "$1" silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
}
samples() { soxi -s "$1"; }
ms() { echo $(( $1 * 1000 / RATE )); }
json_str() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

ENTRIES=()
# add FILE KIND TEXT VOICED_END_MS PAUSES_JSON
add() {
  ENTRIES+=("    {\"file\": \"$1\", \"kind\": \"$2\", \"text\": \"$(json_str "$3")\", \"durationMs\": $4, \"voicedStartMs\": 0, \"voicedEndMs\": $4, \"pauses\": $5}")
}

# clip NAME KIND TEXT: one trimmed utterance.
clip() {
  say "$1.wav" "$3"
  add "$1.wav" "$2" "$3" "$(ms "$(samples "$1.wav")")" "[]"
}

# paused NAME TEXT_A PAUSE_MS TEXT_B: two clips joined by PAUSE_MS of silence.
paused() {
  say "$TMP/a.wav" "$2"
  say "$TMP/b.wav" "$4"
  local a b gap
  a=$(samples "$TMP/a.wav")
  b=$(samples "$TMP/b.wav")
  gap=$(( $3 * RATE / 1000 ))
  sox "$TMP/a.wav" "$TMP/a-gap.wav" pad 0 "${gap}s"
  sox "$TMP/a-gap.wav" "$TMP/b.wav" "$1.wav"
  [ "$(samples "$1.wav")" -eq $(( a + gap + b )) ] || { echo "make.sh: $1.wav has the wrong length" >&2; exit 1; }
  local start end
  start=$(ms "$a")
  end=$(ms $(( a + gap )))
  add "$1.wav" pause "$2 $4" "$(ms $(( a + gap + b )))" "[{\"startMs\": $start, \"endMs\": $end}]"
}

clip yes short "Yes."
clip sure-go-on short "Sure, go on."
clip no-thanks short "No, thank you."
clip weather long "Can you tell me what the weather will be like in Paris this weekend?"
clip virus long "What is the difference between a virus and a bacterium?"
clip recipe long "Could you suggest a simple dinner with rice and vegetables?"
paused trip "I was wondering if you could" 350 "help me plan a trip to the mountains."
paused moon "How far is it" 400 "from the earth to the moon?"
paused train "When does the next train leave" 300 "for the airport tomorrow morning?"
clip uh-huh backchannel "Uh huh."

{
  echo "{"
  echo "  \"about\": \"Spoken by espeak-ng ($VOICE, $SPEED wpm), 16 kHz mono 16-bit, trimmed at 0.5 % of full scale; made by make.sh. Times in ms from the clip's first sample.\","
  echo "  \"sampleRate\": $RATE,"
  echo "  \"utterances\": ["
  for i in "${!ENTRIES[@]}"; do
    sep=","
    [ "$i" -eq $(( ${#ENTRIES[@]} - 1 )) ] && sep=""
    echo "${ENTRIES[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} > manifest.json
du -ch ./*.wav | tail -1
