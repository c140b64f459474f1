#!/usr/bin/env bash
# Regenerates the bench's spoken utterances and their manifest (needs Debian's espeak-ng and sox; the bench only
# reads the committed WAVs and manifest.json). Every clip is 16 kHz mono 16-bit PCM, silence trimmed at both ends
# (threshold 0.5 % of full scale, as test/fixtures/make-fixtures.sh), so a clip's voiced audio starts at 0 ms and
# ends at its last sample. Clips with a mid-sentence pause are two trimmed clips joined by digital silence; the
# manifest gives the pause's position in ms, how many words come before it and how the part before it ends:
# `level` when part A was synthesized with a trailing comma (eSpeak says a comma with a level pitch, continuation
# intonation: ~94 Hz over the last 100 ms against ~79 Hz for a full stop's fall), `falling` when part A was
# synthesized as a sentence of its own (the older clips: pitch falls at the pause as at the end of a statement).
# Each part is trimmed, so eSpeak's ~150 ms of trailing padding never lengthens the measured pause.
# Every clip has a class for the report: short (a short answer), statement (a finished statement), question,
# paused (a sentence with a mid-sentence pause), backchannel. Run it from anywhere: `bash bench/utterances/make.sh`.
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
# add FILE KIND CLASS TEXT VOICED_END_MS PAUSES_JSON
add() {
  ENTRIES+=("    {\"file\": \"$1\", \"kind\": \"$2\", \"class\": \"$3\", \"text\": \"$(json_str "$4")\", \"durationMs\": $5, \"voicedStartMs\": 0, \"voicedEndMs\": $5, \"pauses\": $6}")
}

# clip NAME KIND CLASS TEXT: one trimmed utterance.
clip() {
  say "$1.wav" "$4"
  add "$1.wav" "$2" "$3" "$4" "$(ms "$(samples "$1.wav")")" "[]"
}

# paused NAME TEXT_A PAUSE_MS TEXT_B [level]: two clips joined by PAUSE_MS of digital silence. With `level`, TEXT_A
# ends in a comma and is said with continuation intonation; without, TEXT_A is said as a sentence (falling).
paused() {
  local intonation=${5:-falling}
  if [ "$intonation" = level ]; then
    case "$2" in *,) ;; *) echo "make.sh: $1: a level pause needs part A to end in a comma" >&2; exit 1 ;; esac
  fi
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
  local words
  words=$(echo "$2" | wc -w)
  add "$1.wav" pause paused "$2 $4" "$(ms $(( a + gap + b )))" "[{\"startMs\": $start, \"endMs\": $end, \"words\": $words, \"intonation\": \"$intonation\"}]"
}

# Short answers (the stand-in LLM answers them briefly; the two ≥ 800 ms ones are also spoken over EVA as barge-ins).
clip yes short short "Yes."
clip sure-go-on short short "Sure, go on."
clip no-thanks short short "No, thank you."
clip okay short short "Okay."
# Questions: wh-questions fall at the end, yes/no questions rise.
clip weather long question "Can you tell me what the weather will be like in Paris this weekend?"
clip virus long question "What is the difference between a virus and a bacterium?"
clip recipe long question "Could you suggest a simple dinner with rice and vegetables?"
clip rain long question "Is it going to rain today?"
# Finished statements: falling at the end.
clip taxi long statement "I need a taxi to the airport."
clip pizza-order long statement "I would like to order a large pizza."
clip meeting long statement "The meeting has been moved to three o'clock."
# Mid-sentence pauses, part A said as a sentence of its own (falling at the pause). test/pipeline.test.ts uses trip.
paused trip "I was wondering if you could" 350 "help me plan a trip to the mountains."
paused moon "How far is it" 400 "from the earth to the moon?"
paused train "When does the next train leave" 300 "for the airport tomorrow morning?"
# Mid-sentence pauses with continuation intonation (part A ends in a comma: level pitch), 250–450 ms. The words
# before several of them read as a finished sentence ("I would like to order a large pizza"): text alone cannot
# tell, and the bench's stand-in STT ends the partial with a full stop on every other trial, as Whisper does.
paused pizza "I would like to order a large pizza," 350 "with extra cheese and mushrooms." level
paused flight "I need to book a flight to Berlin," 450 "for next Tuesday morning." level
paused colour "My favourite colour is blue," 300 "but I also like green." level
paused square "When I get to the main square," 400 "should I turn left or right?" level
paused pancakes "Could you tell me how to make pancakes," 250 "without any eggs or milk?" level
paused hotel "We are looking for a hotel near the station," 380 "with free parking." level
paused phone "My phone keeps turning off," 420 "even when the battery is full." level
paused meeting-move "Can we move the meeting to Friday," 320 "or is that too late for you?" level
clip uh-huh backchannel backchannel "Uh huh."

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
