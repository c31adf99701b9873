# Слова, общие для всех страниц. Коротко и просто: их читают в спешке, с телефона.

language-switch = Язык

ago-now = только что
ago-seconds = { $n } сек назад
ago-minutes = { $n } мин назад
ago-hours = { $n } ч назад
ago-days = { $n ->
    [one] { $n } день назад
    [few] { $n } дня назад
   *[other] { $n } дней назад
}

map-label = Карта: где был человек
map-zoom-in = Приблизить
map-zoom-out = Отдалить
