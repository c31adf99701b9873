# console
# The responder console (/console) and the home page (/). Responders read it under pressure:
# short words, and only what is known for sure about what happened.

home-about = A personal safety SOS server that you run yourself. The link in a text message shows one SOS as it happens.

console-title = Responder console
console-token = Responder token
console-sign-in = Sign in
console-token-refused = This token was not accepted. Check it and try again.
console-error-ended = This SOS has already ended.
console-error-not-active = This SOS is no longer active.
console-error-retry = That did not work. Try again.

console-active = Active alerts
console-signed-in = Signed in as { $name }
console-none = No active alerts.
console-close = Close

console-since = since { $time } · { $ago }
console-duress = DURESS PIN USED: may be forced to act as if all is well
console-phone-connected = phone connected
console-phone-lost = no connection to the phone
console-claimed = { $name } is on it
console-claim = I'll take it
console-resolve = Resolve
console-note = { $name } at { $time }: { $text }
console-note-placeholder = Note for the team
console-note-add = Add note

console-finished = Finished alerts
console-search-placeholder = Search by name
console-search = Search
console-finished-resolved = { $name }: the SOS is over · started { $time }
console-finished-ended-phone = { $name } ended the SOS on their phone · started { $time }
console-finished-active = { $name }: the SOS is still on · started { $time }

console-evidence-download = Download evidence (signed ZIP file)
console-hold-reason = Reason for a legal hold
console-hold = Put on legal hold
console-hold-lift = Lift hold
console-hold-on = On legal hold: nothing of this alert is deleted until the hold is lifted.
console-hold-lifted = Hold lifted: it will be deleted when the usual storage time is over.

console-duress-short = DURESS
console-unclaimed = Nobody on it yet
console-actions = What to do
console-resolve-confirm = Resolve { $name }'s alert? Press r again or Enter.
console-resolve-yes = Yes, resolve
console-resolve-no = Not yet
console-sound-on = Turn on alarm sound
console-keys = j/k move · c take · r resolve · n note · / find
console-filter = Find by name
console-pick = Pick an alert from the list.
console-new-alert = New alert: { $name }
console-claim-who = Take { $name }'s alert
