# Maneno ya laned kwa Kiswahili. Kila ujumbe uko pia katika en.ftl (marejeo).
# Misimbo ya mashine (kama lane_suspended) haitafsiriwi.

## Muda na nyakati

dur-seconds = sekunde { $s }
dur-minutes = dakika { $m }
dur-hours = saa { $h }
dur-hours-minutes = saa { $h } dakika { $m }
dur-days = siku { $d }
dur-days-hours = siku { $d } saa { $h }
time-just-now = sasa hivi
time-ago = { $duration } zilizopita
time-never = bado
time-none = hakuna

## Ukurasa wa hali

page-title = Lane { $lane }: { $headline }
page-waiting = Zinasubiri kutumwa
page-attention = Zinahitaji uangalizi
page-oldest = Iliyosubiri zaidi
page-last-sync = Usawazishaji wa mwisho
page-amount-waiting = Kiasi kinachosubiri kutumwa
page-stuck-heading = Mauzo yanayohitaji uangalizi
page-stuck-intro = Ofisi kuu imekataa mauzo haya. Yamehifadhiwa salama kwenye mashine hii; msaada wa kiufundi unaweza kuyarekebisha na kuyatuma tena.
page-col-receipt = Risiti
page-col-total = Jumla
page-col-waiting = Inasubiri
page-col-reason = Sababu
page-stuck-more = na mengine { $n } (laned sales list --state stuck)
page-details = Maelezo kwa msaada wa kiufundi
page-also = Pia kwenye mashine hii
page-clock-heading = Saa
page-clock-text = Saa ya mashine imerudishwa nyuma mara { $n }, mara ya mwisho { $when }. Mauzo hayaathiriki: muda bila usawazishaji unahesabiwa bila kuzingatia hilo.
page-sync-now = Sawazisha sasa
page-sync-contacting = Inawasiliana na ofisi kuu…
page-sync-requested = Usawazishaji umeombwa: ukurasa huu utasasishwa baada ya muda mfupi.
page-sync-failed = Imeshindwa kuomba usawazishaji.
page-sync-unreachable = Imeshindwa kufikia laned.
page-footer = Lane { $lane } · laned { $version } · imesasishwa { $updated } · ukurasa huu unasasishwa kila sekunde { $seconds }

## Bango: jambo zito zaidi kwenye mashine, na la kufanya

banner-ok = Imeunganishwa
banner-ok-do = Mauzo yanafika ofisi kuu.
banner-restored = Mauzo yamesimamishwa: mashine hii ilirejeshwa kutoka nakala ya zamani
banner-restored-do = Ofisi kuu ina risiti ambazo mashine hii haizijui. Piga simu kwa msaada wa kiufundi kabla ya kuuza; hakuna kilichopotea.
banner-no-backend = Haijaunganishwa na ofisi kuu
banner-no-backend-do = Hakuna anwani ya ofisi kuu iliyowekwa: mauzo yanahifadhiwa kwenye mashine hii tu.
banner-closing-stuck = { $n ->
    [one] Ufungaji wa siku haujafika ofisi kuu
   *[other] Ufungaji wa siku { $n } haujafika ofisi kuu
}
banner-closing-stuck-do = Endelea kuuza; hakuna kilichopotea. Piga simu kwa msaada: ofisi kuu imekataa ufungaji au bado haupokei.
banner-offline = Nje ya mtandao
banner-offline-countdown = Nje ya mtandao — { $remaining } kabla mauzo hayajasimamishwa
banner-offline-do = Mauzo yanahifadhiwa kwenye mashine hii na yatatumwa ofisi kuu ikipatikana tena. Haijafikiwa kwa { $offline }.
banner-downtime-unknown = Mauzo yamesimamishwa: saa ya mashine ilirudishwa nyuma ikiwa imezimwa
banner-downtime-unknown-do = Hakuna anayeweza kujua mashine hii ilikaa nje ya mtandao kwa muda gani, kwa hiyo lazima ifikie ofisi kuu kabla ya kuuza tena. Kagua muunganisho wa mtandao; mauzo yataendelea yenyewe ofisi kuu ikijibu. Kama saa ya mashine si sahihi, piga simu kwa msaada wa kiufundi.
banner-suspended = Mauzo yamesimamishwa: hakuna usawazishaji kwa { $limit }
banner-suspended-other = Mauzo yamesimamishwa hadi mashine hii ifikie ofisi kuu
banner-suspended-do = { $reason }. Kagua muunganisho wa mtandao wa mashine; mauzo yataendelea yenyewe ofisi kuu ikijibu.
banner-ceiling-near = Mauzo yatasimama baada ya { $remaining }
banner-ceiling-near-do = { $reason }. Kagua muunganisho wa mtandao sasa; kama unaonekana sawa, piga simu kwa msaada wa kiufundi.
banner-fault = Mauzo hayafiki ofisi kuu
banner-fault-do = { $reason } Endelea kuuza: mauzo yanahifadhiwa salama kwenye mashine hii. Piga simu kwa msaada wa kiufundi.
banner-stuck = { $n ->
    [one] Uuzaji 1 unahitaji uangalizi
   *[other] Mauzo { $n } yanahitaji uangalizi
}
banner-stuck-do = Ofisi kuu imekataa { $n ->
    [one] uuzaji mmoja
   *[other] baadhi ya mauzo
}. Endelea kuuza; hakuna kilichopotea. Piga simu kwa msaada wa kiufundi { $n ->
    [one] uurekebishe na kuutuma tena
   *[other] yarekebishwe na kutumwa tena
}.
banner-clock = Saa ya mashine ilirudishwa nyuma
banner-clock-do = Mauzo hayaathiriki. Kagua tarehe na saa ya mashine; piga simu kwa msaada wa kiufundi ikitokea tena.

## Kwa nini mashine iliacha kuuza

reason-sync-ceiling = Mashine hii haijafikia ofisi kuu kwa { $offline }, na kikomo ni { $limit }
reason-max-unsent-age = Uuzaji wa zamani zaidi ambao haujatumwa ofisi kuu una umri wa { $age }, na kikomo ni { $limit }
reason-monthly-budget = Mashine hii imekuwa nje ya mtandao kwa { $used } mwezi huu, na kikomo ni { $limit }
reason-downtime-unknown = Mashine hii ilizimwa saa yake ikiwa imerudishwa nyuma, kwa hiyo hakuna anayeweza kujua ilikaa nje ya mtandao kwa muda gani

## Maana ya makataa ya ofisi kuu, kwa maneno rahisi

backend-payload_mismatch = Ofisi kuu tayari ina uuzaji wenye kitambulisho hiki lakini wenye maudhui tofauti. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-receipt_no_conflict = Ofisi kuu tayari ina uuzaji wenye namba hii ya risiti. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-validation_failed = Ofisi kuu haikuweza kusoma uuzaji huu kama ulivyo. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-unauthorized = Ofisi kuu haikubali ufunguo wa kuingia wa mashine hii.
backend-forbidden = Ofisi kuu haikubali mauzo kutoka mashine hii.
backend-wrong_lane = Ofisi kuu imesajili ufunguo wa kuingia wa mashine hii kwa mashine nyingine.
backend-series_of_another_lane = Ofisi kuu inasema namba hizi za risiti ni za mashine nyingine.
backend-chain_conflict = Ofisi kuu tayari ina uuzaji mwingine mahali pa uuzaji huu: kumbukumbu za mashine hii huenda zimerejeshwa au kunakiliwa kutoka nakala ya zamani. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-grand_total_mismatch = Ofisi kuu imeona kwamba jumla inayoendelea ya uuzaji huu hailingani. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-bad_ack = Uthibitisho wa ofisi kuu haukuweza kukaguliwa, kwa hiyo mashine hii inahifadhi mauzo na kuyatuma tena. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.
backend-not_found = Anwani ya ofisi kuu iliyowekwa kwenye mashine hii si sahihi.
backend-unexpected = Ofisi kuu imejibu kwa namna ambayo mashine hii haielewi.
backend-refused = Ofisi kuu imekataa uuzaji huu. Piga simu kwa msaada wa kiufundi; hakuna kilichopotea.

## Sentensi za API ya mashine ambazo karani anaweza kusoma

error-lane_suspended = Mashine hii haiwezi kupokea mauzo mapya. { $reason }. Kagua muunganisho wa mtandao wa mashine; mauzo yataendelea yenyewe mara mashine itakapofikia ofisi kuu tena. Kama muunganisho unaonekana sawa, piga simu kwa msaada wa kiufundi. Mauzo yaliyokwisha kurekodiwa yako salama.
error-restored_from_old_copy = Mashine hii haiwezi kupokea mauzo mapya: data yake ni ya zamani kuliko ya ofisi kuu ({ $detail }). Huenda ilirejeshwa kutoka nakala ya zamani. Ili namba ya risiti isitumike mara mbili, msaada wa kiufundi lazima ukubali hili kwanza; kisha namba zitaendelea baada ya namba ya mwisho ya ofisi kuu. Mauzo yaliyokwisha kurekodiwa yako salama.
error-restored-series = ofisi kuu tayari ina risiti { $theirs } wakati ya mwisho ya mashine hii ni { $ours }
error-restored-none = hakuna katika mfululizo huo
error-storage_full = Diski ya mashine imejaa: uuzaji huu HAUKUREKODIWA. Mauzo yaliyohifadhiwa yako salama; ondoa faili ili kupata nafasi, kisha rekodi uuzaji tena.
error-payload_too_large = Uuzaji huu ni mkubwa mno kutumwa ofisi kuu: hati yake ingekuwa baiti { $bytes }, na kikomo ni baiti { $limit }. HAUKUREKODIWA; ugawe kuwa mauzo mawili au fupisha maandishi yake.
error-unavailable = laned ina shughuli nyingi au inazimwa; uuzaji huu HAUKUREKODIWA. Jaribu tena.
error-internal = laned haikuweza kurekodi uuzaji huu kwa sababu ya hitilafu ya hifadhi; HAUKUREKODIWA. Hitilafu iko kwenye kumbukumbu za laned.
error-business_day_closed = Siku ya biashara { $date } imeshafungwa kwenye till hii (imefungwa hadi { $through }): uuzaji huu HAUKUREKODIWA. Uuze kwenye siku ya biashara ya leo.
error-void_of_closed_day = Uuzaji huo ni wa siku ya biashara { $date }, ambayo imeshafungwa: hauwezi kufutwa tena, na hakuna kilichorekodiwa. Fanya marejesho badala yake.
