"""English formats: times are evidence here (when consent was withdrawn, when the upstream
confirmed a deletion), so they show seconds and the time zone, in one unambiguous form."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
