# console
# Пульт диспетчера (/console) и главная страница (/). Диспетчер читает это в спешке:
# коротко, и только то, что точно известно о случившемся.

home-about = Сервер SOS для личной безопасности, который вы запускаете у себя. Ссылка из SMS показывает тревогу в реальном времени.

console-title = Пульт диспетчера
console-token = Токен диспетчера
console-sign-in = Войти
console-token-refused = Токен не принят. Проверьте его и попробуйте ещё раз.
console-error-ended = Этот SOS уже завершён.
console-error-not-active = Этот SOS уже не активен.
console-error-retry = Не получилось. Попробуйте ещё раз.

console-active = Активные тревоги
console-signed-in = Вы вошли как { $name }
console-none = Активных тревог нет.
console-close = Закрыть

console-since = с { $time } · { $ago }
console-duress = ВВЕДЁН КОД ПРИНУЖДЕНИЯ: возможно, человека заставляют делать вид, что всё в порядке
console-phone-connected = телефон на связи
console-phone-lost = нет связи с телефоном
console-claimed = Занимается { $name }
console-claim = Беру на себя
console-resolve = Закрыть тревогу
console-note = { $name } в { $time }: { $text }
console-note-placeholder = Заметка для команды
console-note-add = Добавить заметку

console-finished = Завершённые тревоги
console-search-placeholder = Поиск по имени
console-search = Найти
console-finished-resolved = { $name }: SOS завершён · начался в { $time }
console-finished-ended-phone = { $name }: SOS завершён на телефоне · начался в { $time }
console-finished-active = { $name }: SOS ещё идёт · начался в { $time }

console-evidence-download = Скачать доказательства (ZIP-архив с цифровой подписью)
console-hold-reason = Причина запрета на удаление
console-hold = Запретить удаление
console-hold-lift = Снять запрет
console-hold-on = Удаление запрещено: ничего из этой тревоги не удалится, пока запрет не снимут.
console-hold-lifted = Запрет снят: данные удалятся, когда закончится обычный срок хранения.

console-duress-short = ПРИНУЖДЕНИЕ
console-unclaimed = Никто ещё не взял
console-actions = Что сделать
console-resolve-confirm = Закрыть тревогу: { $name }? Нажмите r ещё раз или Enter.
console-resolve-yes = Да, закрыть
console-resolve-no = Пока нет
console-sound-on = Включить звук тревоги
console-keys = j/k — по списку · c — взять · r — закрыть · n — заметка · / — поиск
console-filter = Поиск по имени
console-pick = Выберите тревогу в списке.
console-new-alert = Новая тревога: { $name }
console-claim-who = Взять тревогу: { $name }
