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

# Почему сервер поднял тревогу. Заметка, место и зона — слова самого человека.
# Без глаголов прошедшего времени: они зависят от рода, а имя его не сообщает.
reason-checkin = { $name }: не было отметки по таймеру вовремя.
reason-checkin-note = { $name }: не было отметки по таймеру вовремя («{ $note }»).
reason-checkin-to = { $name }: не было отметки по таймеру вовремя (куда: { $destination }).
reason-checkin-note-to = { $name }: не было отметки по таймеру вовремя («{ $note }», куда: { $destination }).
reason-duress-checkin = { $name }: отметка по таймеру кодом принуждения.
reason-zone-left = { $name }: выход из безопасной зоны «{ $zone }».
reason-zone-entered = { $name }: вход в опасную зону «{ $zone }».
reason-duress-erase = { $name }: код принуждения введён для удаления аккаунта. Ничего не удалено.
