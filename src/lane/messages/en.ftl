# laned's words for people: the status page, the banner's sentences, the
# back-end's refusals in plain words, and the till API's sentences that a
# cashier may read. English is the reference: every message here exists in
# every other language (a test checks it). Machine-readable codes are not
# here: they stay English everywhere.
#
# Arguments: durations and times arrive formatted; $n is always a count.

## Durations and times

dur-seconds = { $s } s
dur-minutes = { $m } min
dur-hours = { $h } h
dur-hours-minutes = { $h } h { $m } min
dur-days = { $d ->
    [one] 1 day
   *[other] { $d } days
}
dur-days-hours = { $d ->
    [one] 1 day
   *[other] { $d } days
} { $h } h
time-just-now = just now
time-ago = { $duration } ago
time-never = never
time-none = none

## The status page

page-title = Lane { $lane }: { $headline }
page-waiting = Waiting to send
page-attention = Need attention
page-oldest = Oldest waiting
page-last-sync = Last sync
page-amount-waiting = Amount waiting to send
page-stuck-heading = Sales that need attention
page-stuck-intro = Head office refused these sales. They are kept safely on this till; support can fix and resend them.
page-col-receipt = Receipt
page-col-total = Total
page-col-waiting = Waiting
page-col-reason = Reason
page-stuck-more = and { $n } more (laned sales list --state stuck)
page-details = Details for support
page-also = Also on this till
page-clock-heading = Clock
page-clock-text = The till's clock has been set back { $n ->
    [one] once
   *[other] { $n } times
}, last { $when }. Sales are not affected: the time without sync is counted without it.
page-sync-now = Sync now
page-sync-contacting = Contacting head office…
page-sync-requested = Sync requested: this page updates in a moment.
page-sync-failed = Could not request a sync.
page-sync-unreachable = Could not reach laned.
page-footer = Lane { $lane } · laned { $version } · updated { $updated } · this page refreshes every { $seconds } s

## The banner: the worst thing on the lane, and what to do

banner-ok = Connected
banner-ok-do = Sales reach head office.
banner-restored = Sales stopped: this till was restored from an old copy
banner-restored-do = Head office has receipts this till does not know about. Call support before selling; nothing is lost.
banner-no-backend = Not connected to head office
banner-no-backend-do = No head office address is configured: sales are kept on this till only.
banner-closing-stuck = { $n ->
    [one] A day's closing has not reached head office
   *[other] { $n } day closings have not reached head office
}
banner-closing-stuck-do = Keep selling; nothing is lost. Call support: head office refused the closing or does not take closings yet.
banner-offline = Offline
banner-offline-countdown = Offline — { $remaining } until sales stop
banner-offline-do = Sales are kept on this till and sent when head office is back. Not reached for { $offline }.
banner-downtime-unknown = Sales stopped: the till's clock was set back while it was off
banner-downtime-unknown-do = Nobody can tell how long this till was offline, so it must reach head office before it sells again. Check the network connection; sales resume by themselves once head office answers. If the till's clock is wrong, call support.
banner-suspended = Sales stopped: no sync for { $limit }
banner-suspended-other = Sales stopped until this till reaches head office
banner-suspended-do = { $reason }. Check the till's network connection; sales resume by themselves once head office answers.
banner-ceiling-near = Sales stop in { $remaining }
banner-ceiling-near-do = { $reason }. Check the network connection now; if it looks fine, call support.
banner-fault = Sales are not reaching head office
banner-fault-do = { $reason } Keep selling: sales are kept safely on this till. Call support.
banner-stuck = { $n ->
    [one] 1 sale needs attention
   *[other] { $n } sales need attention
}
banner-stuck-do = Head office refused { $n ->
    [one] a sale
   *[other] some sales
}. Keep selling; nothing is lost. Call support to fix and resend { $n ->
    [one] it
   *[other] them
}.
banner-clock = The till's clock was set back
banner-clock-do = Sales are not affected. Check the till's date and time; call support if it happens again.

## Why a lane stopped selling

reason-sync-ceiling = This till has not reached head office for { $offline }, and the limit is { $limit }
reason-max-unsent-age = The oldest sale not yet sent to head office is { $age } old, and the limit is { $limit }
reason-monthly-budget = This till has been offline { $used } this month, and the limit is { $limit }
reason-downtime-unknown = This till was switched off with its clock set back, so nobody can tell how long it was offline

## What head office's refusals mean, in plain words

backend-payload_mismatch = Head office already has a sale with this id but different contents. Call support; nothing is lost.
backend-receipt_no_conflict = Head office already has a sale with this receipt number. Call support; nothing is lost.
backend-validation_failed = Head office could not read this sale as it is. Call support; nothing is lost.
backend-unauthorized = Head office does not accept this till's access key.
backend-forbidden = Head office does not accept sales from this till.
backend-wrong_lane = Head office has this till's access key registered for another till.
backend-series_of_another_lane = Head office says these receipt numbers belong to another till.
backend-chain_conflict = Head office already holds another sale in this sale's place: this till's records may have been restored or copied from an old backup. Call support; nothing is lost.
backend-grand_total_mismatch = Head office found that this sale's running total does not add up. Call support; nothing is lost.
backend-bad_ack = Head office's confirmation could not be checked, so this till keeps the sales and sends them again. Call support; nothing is lost.
backend-not_found = The head office address set on this till is wrong.
backend-unexpected = Head office answered in a way this till does not understand.
backend-refused = Head office refused this sale. Call support; nothing is lost.

## The till API's sentences a cashier may read

error-lane_suspended = This till cannot take new sales. { $reason }. Check the till's network connection; sales resume by themselves as soon as the till reaches head office again. If the connection looks fine, call support. Sales already rung up are safe.
error-restored_from_old_copy = This till cannot take new sales: its data is older than head office's ({ $detail }). It was probably restored from an old backup. So that no receipt number is used twice, support must acknowledge this first; numbering then continues after head office's last number. Sales already rung up are safe.
error-restored-series = head office already has receipt { $theirs } while this till's last is { $ours }
error-restored-none = none in that series
error-storage_full = The till's disk is full: this sale was NOT recorded. Stored sales are safe; free disk space, then ring the sale again.
error-payload_too_large = This sale is too large to send to head office: its document would be { $bytes } bytes, and the largest is { $limit } bytes. It was NOT recorded; split it into two sales or shorten its text.
error-unavailable = laned is busy or shutting down; this sale was NOT recorded. Try again.
error-internal = laned could not record this sale because of a storage error; it was NOT recorded. The error is in laned's log.
error-business_day_closed = The business day { $date } is already closed on this till (closed through { $through }): this sale was NOT recorded. Ring it on today's business day.
error-void_of_closed_day = That sale belongs to the business day { $date }, which is already closed: it cannot be voided any more, and nothing was recorded. Ring a return instead.
