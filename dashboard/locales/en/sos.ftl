# The web SOS page (/sos). Read by someone who may be in danger, on a phone, in a hurry:
# short, plain, and never more hopeful than what happened.

## Signing in

sos-signin-intro = Sign in with your phone number. We text you a code; no password.
sos-signin-phone = Your phone number (with country code)
sos-phone-example = +49 151 12345678
sos-send-code = Text me a code
sos-send-code-again = Text me a new code
sos-signin-code = Code from the text
sos-signin-name = Your name (your contacts see it)
sos-signin = Sign in
sos-code-wrong = That code is wrong or expired. Ask for a new one.
sos-name-long = That name is too long: at most 100 characters.
sos-error-phone = This number cannot be used. Check it, and write it with the country code, like +49 151 12345678.

## When a request fails

sos-error-network = No connection to the server. Try again.
sos-error-signed-out = This browser was signed out. Reload the page and sign in again.
sos-error-too-many-tries = Too many tries. Wait a while, then try again.
sos-error-server = Something went wrong on the server. Try again in a moment.
sos-error-status = That did not work (error { $status }). Try again.
# The server's own reason, in English.
sos-error-server-said = Not done: { $detail }

## The SOS

sos-other-tab = AlertMe is open in another tab or window of this browser: use that one. This tab takes over when it closes.
sos-problem-storage = This browser cannot keep a copy of what is not sent yet (private mode, or the phone is full). Keep this page open.
sos-problem-too-many-alerts = This SOS was not accepted: you already have too many SOS alerts running from the last few minutes. If you can, call the emergency number now.
sos-problem-not-live = Your recording is still being saved, but people watching can no longer hear or see it live.

sos-countdown = { $n ->
    [one] Sending SOS in { $n } second…
   *[other] Sending SOS in { $n } seconds…
}
sos-countdown-cancel = Cancel

sos-sending = Sending SOS…
sos-sent = SOS sent
sos-not-alerted = Your contacts have not been alerted yet: the server has not confirmed your SOS. This page keeps trying. If you can, call the emergency number now.

sos-link-online = Connected
sos-link-connecting = Connecting…
sos-link-offline = No connection: retrying. Nothing is lost: this page keeps everything until it is sent.
sos-link-offline-unsaved = No connection: retrying. Keep this page open until everything is sent.

sos-backlog-none = Everything recorded so far is on the server.
sos-backlog-positions = { $fixes ->
    [one] Not on the server yet: { $fixes } position.
   *[other] Not on the server yet: { $fixes } positions.
}
sos-backlog-recording = Not on the server yet: the latest part of the recording.
sos-backlog-both = { $fixes ->
    [one] Not on the server yet: { $fixes } position and the latest part of the recording.
   *[other] Not on the server yet: { $fixes } positions and the latest part of the recording.
}

sos-location-waiting = Location: finding where you are…
sos-location-on = Location: found
sos-location-denied = Location: permission denied. Your SOS still goes out, but no one can see where you are. To fix this, allow location for this site in the browser settings.
sos-location-searching = Location: not found right now; still trying. Your SOS still goes out.
sos-location-unsupported = Location: this browser cannot find where you are. Your SOS still goes out, but no one can see where you are.
sos-mic-waiting = Microphone: starting…
sos-mic-on = Microphone: recording
sos-mic-denied = Microphone: permission denied. Your SOS still goes out, but no one can hear you. To fix this, allow the microphone for this site in the browser settings.
sos-mic-none = Microphone: none found. Your SOS still goes out, but no one can hear you.
sos-mic-failed = Microphone: could not be turned on. Your SOS still goes out, but no one can hear you.
sos-mic-unsupported = Microphone: this browser cannot send your voice. Your SOS still goes out, but no one can hear you.

# Parts of one line, joined with " · ".
sos-audience-none = No contacts texted yet
sos-audience-notified = Contacts notified: { $notified } of { $total }
sos-audience-opened = { $n ->
    [one] { $n } contact opened the link
   *[other] { $n } contacts opened the link
}
sos-audience-watching = { $n ->
    [0] No one watching yet
    [one] { $n } person watching
   *[other] { $n } people watching
}
sos-audience-responder = Responder { $name } is on it
sos-audience-no-responder = No responder yet

# Followed by the link.
sos-watch-link = Live link for anyone you tell:
sos-pin-placeholder = PIN
sos-pin-label = Your PIN
sos-end = End SOS

## No SOS running

sos-resolved = Your SOS was resolved.
sos-cancelled = Your SOS was cancelled.
sos-elsewhere = This SOS continues in another window.
sos-no-contacts = No emergency contacts yet: add them below. Responders still see your SOS.
sos-press-hint = { $n ->
    [one] Press to alert your contact with your live location and voice.
   *[other] Press to alert your { $n } contacts with your live location and voice.
}

sos-camera-toggle = Send video from the camera
sos-camera-off = Off: an SOS sends your location and voice. Video needs a good connection.
sos-camera-on = On: video from the camera (the back one, if there is one) is sent with your voice.
sos-camera-paused = Paused: the connection is slow, so your location and voice go first. Video comes back when it improves.
sos-camera-unavailable = The camera could not be used: no video is sent.

## Check-in timer

sos-timer-title = Check-in timer
sos-timer-intro = Going somewhere alone? If you do not check in in time, your contacts are alerted with your last position.
sos-timer-minutes-label = Minutes until you check in
sos-timer-min = min
sos-timer-note-placeholder = Where to (optional)
sos-timer-note-label = Where you are going (optional)
# Suggested; sent as written, and your contacts read it if the timer runs out.
sos-timer-note-default = Walking home
sos-timer-start = Start
sos-timer-untitled = Timer
# After the timer's note and a dash; $time is minutes:seconds.
sos-timer-running = check in within { $time }
sos-timer-due = check in now! Your contacts are alerted in { $time }
sos-timer-safe = I'm safe
sos-timer-extend = +15 min
sos-timer-minutes = Minutes must be a number from 1 to 1440 (24 hours).
sos-timer-note-long = The note is too long: at most 200 characters.
sos-timer-gone = This timer is no longer running. If its time ran out, your contacts were alerted.

## Contacts and PIN

sos-setup = Contacts and PIN
sos-contacts-title = Emergency contacts
sos-contact-opted-out = (has turned texts off)
sos-contact-remove = Remove
sos-contact-name = Name
sos-contact-name-label = Contact's name
sos-contact-phone-label = Contact's phone number
sos-contact-add = Add
sos-contact-added = { $name } added. They will get a text saying so.
sos-contact-name-needed = Write the contact's name (up to 100 characters).
sos-contact-phone-bad = This number cannot be added. Write it with the country code, like +49 151 12345678. Your own number cannot be a contact.
sos-contact-exists = This number is already one of your contacts.
sos-contact-limit = You have as many contacts as allowed. Remove one to add another.

sos-pin-title = PIN
sos-pin-intro = Ends an SOS or a timer. A duress PIN looks the same to whoever forces you, but keeps the alert going silently.
sos-pin-new = New PIN (4-8 digits)
sos-pin-duress = Duress PIN (optional)
sos-pin-save = Save PIN
sos-pin-saved = PIN saved.
sos-pin-format = A PIN is 4 to 8 digits.
sos-pin-duress-same = The duress PIN must differ from your PIN.
sos-pin-wrong = Wrong PIN.
sos-pin-missing = No PIN is set yet: set one under “Contacts and PIN” below, then try again.
sos-sign-out = Sign out of this browser
