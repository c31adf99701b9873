# Words shared by every page. Short and plain: people read these in a hurry, on a phone.

language-switch = Language

ago-now = just now
ago-seconds = { $n } s ago
ago-minutes = { $n } min ago
ago-hours = { $n } h ago
ago-days = { $n ->
    [one] { $n } day ago
   *[other] { $n } days ago
}

map-label = Map of where the person has been
map-zoom-in = Zoom in
map-zoom-out = Zoom out

# Why the server raised an alert. The note, destination and zone are the person's own words.
reason-checkin = { $name } did not check in on time.
reason-checkin-note = { $name } did not check in on time: “{ $note }”.
reason-checkin-to = { $name } did not check in on time on the way to { $destination }.
reason-checkin-note-to = { $name } did not check in on time: “{ $note }”, on the way to { $destination }.
reason-duress-checkin = { $name } checked in with the duress PIN.
reason-duress-checkin-note = { $name } checked in with the duress PIN (“{ $note }”).
reason-zone-left = { $name } left the safe zone “{ $zone }”.
reason-zone-entered = { $name } entered the danger zone “{ $zone }”.
reason-duress-erase = { $name } gave the duress PIN when erasing their account. Nothing was erased.
