# Texts to people's phones. Plain GSM-7 only (no dashes or curly quotes): one character outside
# it turns the whole text into UCS-2, 70 characters a segment instead of 160.

sms-code = Your AlertMe code is { $code }. It expires in { $minutes ->
        [one] { $minutes } minute
       *[other] { $minutes } minutes
    }. Never share it.

sms-contact-added = { $name } added you as an emergency contact on AlertMe. If they ever need help, you get a text with a link to see where they are. Reply STOP to opt out.

sms-alert = { $name } needs help. Watch live: { $link }

sms-alert-duress = { $name } may be in danger (possible duress). Watch live: { $link }

sms-alert-timer = { $name } missed a safety check-in. Last known position: { $link }

sms-alert-timer-detail = { $name } missed a safety check-in ({ $detail }). Last known position: { $link }

sms-alert-zone-left = { $name } left the safe zone "{ $zone }". Watch live: { $link }

sms-alert-zone-entered = { $name } entered the danger zone "{ $zone }". Watch live: { $link }

sms-duress-cancel = { $name } used the duress PIN: may be forced. SOS still on; do not call. { $link }

sms-phone-silent = { $name }'s phone went silent during the SOS. Last position: { $position } Watch: { $link }

sms-phone-silent-nowhere = { $name }'s phone went silent during the SOS; no position was received. Watch: { $link }

sms-ended = All clear: { $name } ended the SOS.

sms-resolved-by = All clear: { $responder } (responder) resolved { $name }'s SOS.

sms-resolved = All clear: a responder resolved { $name }'s SOS.
