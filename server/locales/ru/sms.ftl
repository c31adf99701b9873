# Тексты SMS. Русский текст идёт в UCS-2: 70 знаков в одном сообщении, 67 в каждой части
# длинного. Пишем коротко и без глаголов прошедшего времени: у них есть род, а имени его не знаем.

sms-code = Код AlertMe: { $code }. Действует { $minutes ->
        [one] { $minutes } минуту
        [few] { $minutes } минуты
       *[many] { $minutes } минут
    }. Никому не сообщайте.

sms-contact-added = { $name } указывает вас экстренным контактом в AlertMe: если понадобится помощь, придёт SMS со ссылкой. Отписаться: STOP

sms-alert = SOS: { $name } просит помощи. Смотреть онлайн: { $link }

sms-alert-duress = SOS: { $name }, возможно, под угрозой. Смотреть: { $link }

sms-alert-timer = SOS: { $name } не отмечается вовремя. Последнее место: { $link }

sms-alert-timer-detail = SOS: { $name } не отмечается вовремя ({ $detail }). Последнее место: { $link }

sms-alert-zone-left = SOS: { $name } вне безопасной зоны «{ $zone }». Смотреть: { $link }

sms-alert-zone-entered = SOS: { $name } в опасной зоне «{ $zone }». Смотреть: { $link }

sms-duress-cancel = { $name }: отмена под принуждением, SOS идёт. Не звоните! { $link }

sms-phone-silent = { $name }: телефон молчит во время SOS. Последнее место: { $position } Смотреть: { $link }

sms-phone-silent-nowhere = { $name }: телефон молчит, места нет. Смотреть: { $link }

sms-ended = Отбой: { $name } завершает SOS.

sms-resolved-by = Отбой: SOS ({ $name }) закрыт, ответственный: { $responder }.

sms-resolved = Отбой: SOS ({ $name }) закрыт оператором.
