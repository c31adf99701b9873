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
