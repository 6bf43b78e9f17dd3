#!/bin/sh
# The key ceremony for the three-region example, as each operator runs it.
# Cards travel by any channel (email, chat); the fingerprints are read aloud
# over a separate one (a phone call between operators who know each other).
# Run on each server as the avisa user; DATA=/var/lib/avisa.
set -eu
DATA=${DATA:-/var/lib/avisa}

case "${1:-}" in
export)  # every operator: publish the card, read the fingerprint to the neighbours
    avisa keys export-card --data "$DATA" --out "$(hostname)-card.json"
    avisa keys show --data "$DATA"
    ;;
ventura)  # Ventura trusts LA for Los Angeles County
    avisa trust add la-card.json --fingerprint "$LA_FP" --speaks-for fips:06037 --data "$DATA"
    ;;
la)  # LA trusts both neighbours for their counties and endorses what it relays
    avisa trust add ventura-card.json --fingerprint "$VENTURA_FP" \
        --speaks-for fips:06111 --endorse --data "$DATA"
    avisa trust add orange-card.json --fingerprint "$ORANGE_FP" \
        --speaks-for fips:06059 --endorse --data "$DATA"
    ;;
orange)  # Orange trusts LA for Los Angeles County, sighting-type alerts only
    avisa trust add la-card.json --fingerprint "$LA_FP" --speaks-for fips:06037 \
        --kinds sighting operation checkpoint workplace detention rumor all_clear \
        --data "$DATA"
    ;;
*)
    echo "usage: $0 export|ventura|la|orange (with LA_FP, VENTURA_FP, ORANGE_FP set)" >&2
    exit 2
    ;;
esac
avisa trust list --data "$DATA"
