#!/usr/bin/env bash
# Synthesise the demo hotline's prompts with espeak-ng and write them as 8 kHz mono 16-bit WAV
# files under prompts/en/. Run from the repository root; needs espeak-ng and sox.
set -euo pipefail
out=prompts/en
mkdir -p "$out"
say() {
  local name=$1 text=$2
  espeak-ng -v en-us -s 150 -w "$out/$name.tmp.wav" "$text"
  sox "$out/$name.tmp.wav" -r 8000 -c 1 -b 16 "$out/$name.wav" norm -3
  rm -f "$out/$name.tmp.wav"
}
say welcome "Thank you for calling the service hotline."
say main_menu "For opening hours, press 1. To check an account, press 2. To report a problem, press 3. To hear this menu again, press star."
say opening_hours "We are open Monday to Friday, from eight in the morning to eight in the evening, and on Saturdays from nine to one."
say enter_account "Please enter your account number, followed by the hash key."
say account_received "Thank you. Your account number has been noted. An agent will review it."
say problem_received "Thank you. Your report has been logged, and a technician will call you back."
say invalid "Sorry, that is not a valid choice."
say no_input "Sorry, we did not hear your choice."
say goodbye "Thank you for calling. Goodbye."
