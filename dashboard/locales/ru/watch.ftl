# Страница, которую близкий открывает по ссылке из SMS, панель «Где» и ход событий тревоги.

watch-title-loading = AlertMe
watch-title-active = { $name }: нужна помощь
watch-title-resolved = { $name }: SOS завершён
watch-title-ended-phone = { $name }: SOS завершён на телефоне
watch-why-duress = Возможно, { $name } под давлением и делает вид, что всё в порядке. Считайте этот SOS настоящим.
watch-why-auto = Отправлено автоматически. { $reason }
watch-offline = Нет связи с AlertMe. Проверьте интернет и обновите страницу.

watch-link-connecting = Подключение…
watch-link-reconnecting = Связь прервалась, подключаемся снова…
watch-link-ended = SOS завершён
watch-link-revoked = Доступ закрыт
watch-phone-lost = Нет связи с телефоном
watch-phone-connected = Телефон на связи
watch-battery = Заряд { $pct }%
watch-updated-now = обновлено только что
watch-updated = обновлено { $n } сек назад

watch-waiting-fix = Ждём первое местоположение с телефона…
watch-audio-waiting = Звука с телефона пока нет.
watch-audio-unsupported = Этот браузер не может воспроизводить звук в прямом эфире. Запись сохраняется: её можно будет прослушать здесь после окончания SOS.
watch-tap-listen = ▶ Нажмите, чтобы слушать
watch-tap-watch = ▶ Нажмите, чтобы видеть и слышать
watch-tap-why = Браузер включает звук только после нажатия.
watch-listening = ■ Вы слушаете прямой эфир
watch-watching = ■ Вы смотрите прямой эфир
watch-video-label = Видео с телефона в прямом эфире

watch-recording = Запись
watch-recording-sent = Запись, присланная с телефона
watch-replay-hint = Во время воспроизведения метка движется по маршруту.

watch-invalid-title = Ссылка недействительна
watch-invalid-body = Возможно, в ней опечатка, её закрыли или она от другого сервера. Спросите того, кто её прислал. Если кому-то грозит опасность, звоните в экстренные службы.
watch-expired-title = Срок действия ссылки истёк
watch-expired-body = SOS закончился некоторое время назад, и ссылка перестала работать, чтобы защитить личные данные человека. Запись можно попросить у него самого или у диспетчеров.
watch-withdrawn-title = Доступ по ссылке закрыт
watch-withdrawn-body = Человек или диспетчер закрыл доступ к этому SOS по этой ссылке. Если кому-то грозит опасность, звоните в экстренные службы.

timeline-raised = SOS отправлен в { $time }
timeline-texted = { $n ->
    [one] SMS для { $n } контакта
   *[other] SMS для { $n } контактов
}
timeline-delivery = { $contact }: { $state }
timeline-delivery-opened = { $contact }: { $state }, ссылка открыта
timeline-delivery-revoked = { $contact }: { $state }, доступ закрыт
timeline-withdraw = Закрыть доступ
timeline-claimed = Тревогой занимается диспетчер { $responder }
timeline-waiting = Ждём, пока диспетчер примет тревогу
timeline-resolved = SOS завершён в { $time }
timeline-ended-phone = { $name }: SOS завершён на телефоне в { $time }

delivery-sending = отправляется…
delivery-queued = принято сервисом SMS
delivery-sent = отправлено
delivery-delivered = доставлено
delivery-undelivered = не доставлено
delivery-failed = не удалось отправить
delivery-opted-out = SMS отключены получателем
delivery-limited = не отправлено: исчерпан лимит SMS

place-title = Где
place-directions = Маршрут
place-copy = Скопировать место для экстренных служб
place-copied = Скопировано.
place-select = Выделите текст ниже, чтобы скопировать.
place-open-in = Открыть в
place-coords = { $coords } · ±{ $accuracy } м · { $age } · Plus Code { $code }
place-emergency = { $coords } (точность { $accuracy } м, { $age })
