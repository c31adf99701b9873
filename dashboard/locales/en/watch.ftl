# The page a relative opens from the text message, the place panel and the alert's timeline.

watch-title-loading = AlertMe
watch-title-active = { $name } needs help
watch-title-resolved = { $name }: the SOS is over
watch-title-ended-phone = { $name } ended the SOS on their phone
watch-why-duress = { $name } may be forced to act as if all is well. Treat this SOS as real.
watch-why-auto = Sent automatically. { $reason }
watch-offline = Cannot reach AlertMe. Check your connection, then reload the page.

watch-link-connecting = Connecting…
watch-link-reconnecting = Connection lost, reconnecting…
watch-link-ended = The SOS is over
watch-link-revoked = Access withdrawn
watch-phone-lost = No connection to the phone
watch-phone-connected = Phone connected
watch-battery = Battery { $pct }%
watch-updated-now = updated just now
watch-updated = updated { $n } s ago

watch-waiting-fix = Waiting for the first position from the phone…
watch-audio-waiting = No sound from the phone yet.
watch-audio-unsupported = This browser cannot play live sound. The recording is kept: you can play it here when the SOS is over.
watch-tap-listen = ▶ Tap to listen live
watch-tap-watch = ▶ Tap to see and hear live
watch-tap-why = Your browser plays sound only after you tap.
watch-listening = ■ Listening live
watch-watching = ■ Watching live
watch-video-label = Live video from the phone

watch-recording = Recording
watch-recording-sent = Recording sent from the phone
watch-replay-hint = As it plays, the marker moves along the route.

watch-invalid-title = This link is not valid
watch-invalid-body = It may be mistyped, withdrawn, or for another server. Ask the person who sent it. If someone is in danger, call the emergency services.
watch-expired-title = This link has expired
watch-expired-body = The SOS ended a while ago. Links stop working after that to protect the person's privacy. Ask them or the responders for the recording.
watch-withdrawn-title = This link was withdrawn
watch-withdrawn-body = The person or a responder stopped sharing this SOS with this link. If someone is in danger, call the emergency services.

timeline-raised = SOS sent { $time }
timeline-texted = { $n ->
    [one] Text to { $n } contact
   *[other] Texts to { $n } contacts
}
timeline-delivery = { $contact }: { $state }
timeline-delivery-opened = { $contact }: { $state }, opened the link
timeline-delivery-revoked = { $contact }: { $state }, link withdrawn
timeline-withdraw = Withdraw link
timeline-claimed = { $responder } (responder) is on it
timeline-waiting = Waiting for a responder
timeline-resolved = SOS resolved { $time }
timeline-ended-phone = { $name } ended the SOS on their phone { $time }

delivery-sending = sending…
delivery-queued = accepted by the text service
delivery-sent = sent
delivery-delivered = delivered
delivery-undelivered = not delivered
delivery-failed = could not be sent
delivery-opted-out = has turned texts off
delivery-limited = not sent: the text limit was reached

place-title = Where
place-directions = Directions
place-copy = Copy location for emergency services
place-copied = Copied.
place-select = Select the text below to copy it.
place-open-in = Open in
place-coords = { $coords } · ±{ $accuracy } m · { $age } · Plus Code { $code }
place-emergency = { $coords } (accurate to { $accuracy } m, { $age })
