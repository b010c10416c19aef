#!/bin/sh
# dps-fixup: make this installed system DPS- and UKI-ready. The plain-shell twin of
# `dps-composer fixup --running` (same rules as composer/fixup/plan.py), for systems that
# have no dps-composer: an anaconda %post, or a booted image. Needs sh, coreutils, awk,
# util-linux (findmnt, lsblk, blkid) and sfdisk; systemd-id128 for a /var partition.
#
# It finds the disk holding /, gives / and every partition fstab mounts at a DPS mount point
# (/usr /home /srv /var /var/tmp, swap, the ESP) its DPS type (root-<arch>, …; /var also gets
# the machine-id HMAC UUID), drops the fstab lines and root= arguments (/etc/kernel/cmdline,
# /etc/default/grub, Boot Loader Specification entries) that discovery makes redundant, and
# sets up the boot loader. Idempotent: a second run changes nothing.
#
# usage: dps-fixup [--dry-run] [--loader keep|systemd-boot|uki-direct|grub2]
# DPS_FIXUP_LIB=1 only defines the functions (tests source it).

FSTAB_MARK='# dps-composer fixup: found by its partition type: '
VAR_TYPE_HEX=4d21b016b53445c2a9fb5c16e091fd2d

say() { printf 'dps-fixup: %s\n' "$*"; }
note() { say "ok: $*"; }
kept() { say "kept: $*"; }
change() {
    CHANGES=$((CHANGES + 1))
    say "change: $*"
}
# run COMMAND…: carry a change out, or only show it with --dry-run
run() {
    if [ "$DRY_RUN" = 1 ]; then
        say "would run: $*"
    else
        "$@" || {
            say "FAILED: $*"
            FAILED=1
        }
    fi
}

# --- DPS facts (composer/spec/dps.py; tests/unit/test_fixup_twin.py holds them equal) ---------
dps_arch() {
    case ${1:-$(uname -m)} in
        x86_64 | amd64) echo x86-64 ;;
        i?86) echo x86 ;;
        aarch64 | arm64) echo arm64 ;;
        arm*) echo arm ;;
        riscv64) echo riscv64 ;;
        ppc64le) echo ppc64-le ;;
        s390x) echo s390x ;;
        loongarch64) echo loongarch64 ;;
        *) return 1 ;;
    esac
}

efi_arch() {
    case $1 in
        x86-64) echo x64 ;;
        x86) echo ia32 ;;
        arm64) echo aa64 ;;
        arm | riscv64 | loongarch64) echo "$1" ;;
        *) return 1 ;;
    esac
}

dps_type() { # DESIGNATOR ARCH
    case $1:$2 in
        root:x86-64) echo 4f68bce3-e8cd-4db1-96e7-fbcaf984b709 ;;
        root:x86) echo 44479540-f297-41b2-9af7-d131d5f0458a ;;
        root:arm64) echo b921b045-1df0-41c3-af44-4c6f280d3fae ;;
        root:arm) echo 69dad710-2ce4-4e3c-b16c-21a1d49abed3 ;;
        root:riscv64) echo 72ec70a6-cf74-40e6-bd49-4bda08e8f224 ;;
        root:ppc64-le) echo c31c45e6-3f39-412e-80fb-4809c4980599 ;;
        root:s390x) echo 5eead9a9-fe09-4a1e-a1d7-520d00531306 ;;
        root:loongarch64) echo 77055800-792c-4f94-b39a-98c91b762bb6 ;;
        usr:x86-64) echo 8484680c-9521-48c6-9c11-b0720656f69e ;;
        usr:x86) echo 75250d76-8cc6-458e-bd66-bd47cc81a812 ;;
        usr:arm64) echo b0e01050-ee5f-4390-949a-9101b17104e9 ;;
        usr:arm) echo 7d0359a3-02b3-4f0a-865c-654403e70625 ;;
        usr:riscv64) echo beaec34b-8442-439b-a40b-984381ed097d ;;
        usr:ppc64-le) echo 15bb03af-77e7-4d4a-b12b-c0d084f7491c ;;
        usr:s390x) echo 8a4f5770-50aa-4ed3-874a-99b710db6fea ;;
        usr:loongarch64) echo e611c702-575c-4cbe-9a46-434fa0bf7e3f ;;
        esp:*) echo c12a7328-f81f-11d2-ba4b-00a0c93ec93b ;;
        xbootldr:*) echo bc13c2ff-59e6-4262-a352-b275fd6f7172 ;;
        swap:*) echo 0657fd6d-a4ab-43c4-84e5-0933c84b4f4f ;;
        home:*) echo 933ac7e1-2eb4-4f13-b844-0e14e2aef915 ;;
        srv:*) echo 3b8f8425-20e0-4f3b-907f-1a25a76f98e8 ;;
        var:*) echo 4d21b016-b534-45c2-a9fb-5c16e091fd2d ;;
        tmp:*) echo 7ec6f557-3bc5-4aca-b293-16ef5df639d1 ;;
        *) return 1 ;;
    esac
}

type_name() { # TYPE_UUID ARCH -> "root-x86-64 (4f68…)" or the bare UUID
    for _d in root usr esp xbootldr swap home srv var tmp; do
        if [ "$(dps_type "$_d" "$2")" = "$1" ]; then
            case $_d in root | usr) printf '%s-%s (%s)' "$_d" "$2" "$1" ;; *) printf '%s (%s)' "$_d" "$1" ;; esac
            return
        fi
    done
    [ "$1" = 0fc63daf-8483-4772-8e79-3d69d8477de4 ] && printf 'linux-generic (%s)' "$1" && return
    printf '%s' "$1"
}

designator_for() { # TARGET FSTYPE HAS_XBOOTLDR(0/1) -> designator, or nothing
    if [ "$2" = swap ]; then
        echo swap
        return
    fi
    case $1 in
        / | //) echo root ;;
        /usr | /usr/) echo usr ;;
        /home | /home/) echo home ;;
        /srv | /srv/) echo srv ;;
        /var | /var/) echo var ;;
        /var/tmp | /var/tmp/) echo tmp ;;
        /efi | /efi/) echo esp ;;
        /boot | /boot/)
            if [ "$2" = vfat ]; then
                if [ "$3" = 1 ]; then echo xbootldr; else echo esp; fi
            fi
            ;;
    esac
}

options_reproducible() { # OPTIONS -> true when dropping the fstab line loses nothing
    _ifs=$IFS
    IFS=,
    for _o in $1; do
        case $_o in
            '' | defaults | rw | auto | async | nouser | relatime | errors=remount-ro) ;;
            nofail | discard | sw | pri=0 | x-systemd.*) ;;
            *)
                IFS=$_ifs
                return 1
                ;;
        esac
    done
    IFS=$_ifs
    return 0
}

# awk: strip(s) drops root= and rootfstype= words (blanks inside "quotes" do not split),
# returning s unchanged when it has none; the twin of composer/fixup/edits.py.
AWK_STRIP='
function isroot(w,   k) {
    if (index(w, "=") == 0) return 0
    k = substr(w, 1, index(w, "=") - 1)
    sub(/^"+/, "", k); sub(/"+$/, "", k)
    return k == "root" || k == "rootfstype"
}
function strip(s,   n, i, c, w, inw, inq, words, found, out) {
    n = 0; w = ""; inw = 0; inq = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (inq) { w = w c; if (c == "\"") inq = 0; continue }
        if (c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\f" || c == "\v") {
            if (inw) { words[++n] = w; w = ""; inw = 0 }
            continue
        }
        w = w c; inw = 1
        if (c == "\"") inq = 1
    }
    if (inw) words[++n] = w
    found = 0
    for (i = 1; i <= n; i++) if (isroot(words[i])) found = 1
    if (!found) return s
    out = ""
    for (i = 1; i <= n; i++) if (!isroot(words[i])) out = out (out == "" ? "" : " ") words[i]
    return out
}
function trim(s) { sub(/^[ \t\n\r\f\v]+/, "", s); sub(/[ \t\n\r\f\v]+$/, "", s); return s }
'

# edit_cmdline_file PATH: PATH's text without root= (PATH's name says what kind of file it
# is) on stdout; exit status 1 (and no output) when there is nothing to drop.
edit_cmdline_file() {
    case $1 in
        */etc/default/grub) _mode=grub ;;
        */loader/entries/*) _mode=bls ;;
        *) _mode=cmdline ;;
    esac
    awk -v mode="$_mode" "$AWK_STRIP"'
    function body(line,   m) {  # line minus its trailing blanks
        m = line; sub(/[ \t]+$/, "", m); return m
    }
    mode == "cmdline" { all = all (NR > 1 ? "\n" : "") $0; next }
    mode == "bls" && match($0, /^[ \t]*options[ \t]+/) {
        head = substr($0, 1, RLENGTH); rest = body(substr($0, RLENGTH + 1))
        new = strip(rest)
        if (new == rest) { out = out $0 "\n"; next }
        changed = 1
        if (new != "") out = out head new "\n"
        next
    }
    mode == "grub" && match($0, /^[ \t]*GRUB_CMDLINE_LINUX(_DEFAULT)?=/) {
        head = substr($0, 1, RLENGTH); val = substr($0, RLENGTH + 1)
        rest = body(val); tail = substr(val, length(rest) + 1)
        q = substr(rest, 1, 1)
        if ((q == "\"" || q == "'\''") && length(rest) >= 2 && substr(rest, length(rest), 1) == q)
            rest = substr(rest, 2, length(rest) - 2)
        else q = ""
        new = strip(rest)
        if (new == rest) { out = out $0 "\n"; next }
        changed = 1
        if (q == "") q = "\""
        out = out head q new q tail "\n"
        next
    }
    { out = out $0 "\n" }
    END {
        if (mode == "cmdline") {
            t = trim(all); new = strip(t)
            if (new != t) { changed = 1; out = new "\n" }
        }
        if (!changed) exit 1
        printf "%s", out
    }' "$1"
}

# --- the running system ---------------------------------------------------------------------
realdev() { readlink -f "$1" 2>/dev/null || printf '%s' "$1"; }

resolve_spec() { # fstab device spec -> device node on this system
    case $1 in
        UUID=* | PARTUUID=* | LABEL=* | PARTLABEL=*)
            findfs "$1" 2>/dev/null || blkid -l -o device -t "$1" 2>/dev/null
            ;;
        /dev/*) realdev "$1" ;;
    esac
}

part_number() { cat "/sys/class/block/$(basename "$(realdev "$1")")/partition" 2>/dev/null; }
part_disk() { printf '/dev/%s' "$(lsblk -dno PKNAME "$1" 2>/dev/null | head -n 1)"; }
fs_type() { lsblk -dno FSTYPE "$1" 2>/dev/null | head -n 1; }

# TYPES: "N=type-uuid" words, the table as it will be after this run
load_types() {
    TYPES=$(sfdisk -d "$DISK" 2>/dev/null | sed -n 's/^\([^ ]*\) : .*type=\([0-9A-Fa-f-]*\).*/\1 \2/p' |
        while read -r _node _type; do
            printf '%s=%s ' "$(part_number "$_node")" "$(printf '%s' "$_type" | tr 'A-F' 'a-f')"
        done)
}
type_of() { for _w in $TYPES; do [ "${_w%%=*}" = "$1" ] && printf '%s' "${_w#*=}"; done; }
set_planned_type() {
    _new=''
    for _w in $TYPES; do
        if [ "${_w%%=*}" = "$1" ]; then _new="$_new$1=$2 "; else _new="$_new$_w "; fi
    done
    TYPES=$_new
}
first_with_type() { # TYPE -> lowest partition number that has it
    for _w in $TYPES; do [ "${_w#*=}" = "$1" ] && printf '%s\n' "${_w%%=*}"; done | sort -n | head -n 1
}

# want_type NODE DESIGNATOR WHY: give the partition its DPS type; false on a clash
want_type() {
    _n=$(part_number "$1")
    _want=$(dps_type "$2" "$ARCH")
    _first=$(first_with_type "$_want")
    if [ -n "$_first" ] && [ "$_first" -lt "$_n" ]; then
        kept "$1 ($3): partition $_first already has type $2 and comes first, so discovery would pick that one"
        return 1
    fi
    _have=$(type_of "$_n")
    if [ "$_have" = "$_want" ]; then
        note "$1 ($3) has type $(type_name "$_want" "$ARCH")"
    else
        change "$1: type $(type_name "$_have" "$ARCH") -> $(type_name "$_want" "$ARCH") ($3)"
        run sfdisk -q --no-reread --no-tell-kernel --part-type "$DISK" "$_n" "$_want"
        set_planned_type "$_n" "$_want"
    fi
    return 0
}

check_root() {
    if [ -z "$ROOT_N" ]; then
        kept "/ is on ${ROOT:-an unknown device}, not a partition of a disk"
        return 1
    fi
    _label=$(lsblk -dno PTTYPE "$DISK" 2>/dev/null | head -n 1)
    if [ "$_label" != gpt ]; then
        kept "$DISK has a ${_label:-unknown} partition table, not GPT"
        return 1
    fi
    want_type "$ROOT" root / || return 1
    if [ -z "$(first_with_type "$(dps_type esp "$ARCH")")" ]; then
        kept "$DISK has no ESP: discovery looks for / on the ESP's disk"
        return 1
    fi
}

is_esp() { # DEVICE: an ESP-typed partition of the disk holding /
    [ "$(part_disk "$1")" = "$DISK" ] &&
        [ "$(type_of "$(part_number "$1")")" = "$(dps_type esp "$ARCH")" ]
}

find_esp() {
    ESP=''
    for _p in /efi /boot/efi /boot; do
        [ -d "$_p" ] || continue
        ls "$_p" >/dev/null 2>&1 # triggers an automount
        # an automount lists two sources: systemd-1 (autofs), then the ESP itself
        for _src in $(findmnt -rno SOURCE --mountpoint "$_p" 2>/dev/null); do
            if is_esp "$(realdev "$_src")"; then
                ESP=$_p
                return
            fi
        done
    done
    # Nothing mounted it (no fstab line, no discovery yet): mount it where DPS says, for now.
    _n=$(first_with_type "$(dps_type esp "$ARCH")")
    [ -n "$_n" ] || return 0
    _dev=$(lsblk -lnpo NAME "$DISK" | while read -r _d; do
        [ "$(part_number "$_d")" = "$_n" ] && printf '%s\n' "$_d"
    done | head -n 1)
    for _p in /efi /boot/efi /boot; do
        if [ -d "$_p" ] && [ -z "$(ls -A "$_p" 2>/dev/null)" ] && mount "$_dev" "$_p" 2>/dev/null; then
            ESP=$_p
            ESP_MOUNTED_BY_US=$_p
            note "mounted the ESP $_dev at $_p"
            return
        fi
    done
}

newest() { sort -V | tail -n 1; }

# uki_on_esp: UKI=path of the UKI the ESP boots; copies the system's newest one there if none
uki_on_esp() {
    UKI=$(ls "$ESP"/EFI/Linux/*.efi "$ESP"/EFI/Linux/*.EFI 2>/dev/null | newest)
    [ -n "$UKI" ] && return 0
    _src=$(ls /usr/lib/modules/*/*.efi 2>/dev/null | newest)
    if [ -z "$_src" ]; then
        kept "no UKI on the ESP and none in /usr/lib/modules to put there"
        return 1
    fi
    _kver=$(basename "$(dirname "$_src")")
    UKI="$ESP/EFI/Linux/$OS_ID-$_kver.efi"
    change "copy $_src -> $UKI (BLS Type #2 entry for the UKI)"
    run mkdir -p "$ESP/EFI/Linux"
    run cp "$_src" "$UKI"
    return 0
}

setup_loader() { # true when the boot chain reports LoaderDevicePartUUID
    _sdboot=$ESP/EFI/systemd/systemd-boot$EFI_ARCH.efi
    if [ "$LOADER" = keep ]; then
        if [ -n "$ESP" ] && [ -e "$_sdboot" ]; then
            note "boot chain kept: systemd-boot"
        elif [ -n "$ESP" ] && ls "$ESP"/EFI/Linux/*.efi >/dev/null 2>&1; then
            note "boot chain kept: a UKI"
        else
            kept "root= kept: the boot chain has neither systemd-boot nor a UKI"
            return 1
        fi
        return 0
    fi
    if [ -z "$ESP" ]; then
        kept "no ESP mounted: cannot set up $LOADER"
        return 1
    fi
    uki_on_esp
    _have_uki=$?
    case $LOADER in
        systemd-boot)
            if [ -e "$_sdboot" ]; then
                note "systemd-boot is installed"
            elif command -v bootctl >/dev/null && [ -e "/usr/lib/systemd/boot/efi/systemd-boot$EFI_ARCH.efi" ]; then
                change "install systemd-boot into the ESP at $ESP (bootctl install)"
                run bootctl install --esp-path="$ESP"
            else
                kept "systemd-boot is not installed and its EFI binary is missing (install systemd-boot or systemd-boot-unsigned)"
                return 1
            fi
            return 0
            ;;
        uki-direct)
            [ "$_have_uki" = 0 ] || return 1
            _fallback=$ESP/EFI/BOOT/BOOT$(printf '%s' "$EFI_ARCH" | tr 'a-z' 'A-Z').EFI
            if cmp -s "$UKI" "$_fallback"; then
                note "$_fallback is the UKI: the firmware starts it directly"
            else
                change "copy $UKI -> $_fallback (the firmware starts the UKI)"
                run mkdir -p "$ESP/EFI/BOOT"
                run cp "$UKI" "$_fallback"
            fi
            ;;
    esac
    return "$_have_uki"
}

var_uuid() {
    _mid=$(cat /etc/machine-id 2>/dev/null)
    case $_mid in '' | uninitialized | *[!0-9a-f]* | 00000000000000000000000000000000) return 1 ;; esac
    [ ${#_mid} = 32 ] || return 1
    systemd-id128 machine-id --app-specific="$VAR_TYPE_HEX" -u 2>/dev/null
}

# fstab_entry LINE_NUMBER SPEC TARGET FSTYPE OPTIONS: adds LINE_NUMBER to DROP when it can go
fstab_entry() {
    _t=$(printf '%b' "$(printf '%s' "$3" | sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g')")
    _dev=$(resolve_spec "$2")
    [ "$_t" = / ] && [ -z "$_dev" ] && _dev=$ROOT
    _x=0
    [ -n "$(first_with_type "$(dps_type xbootldr "$ARCH")")" ] && _x=1
    _d=$(designator_for "$_t" "$4" "$_x")
    [ -n "$_dev" ] && [ "$(part_disk "$_dev")" = "$DISK" ] || return 0
    if [ -z "$_d" ]; then
        [ "$_t" = /boot/efi ] && [ "$(fs_type "$_dev")" = vfat ] && want_type "$_dev" esp "$_t"
        return 0
    fi
    if [ "$_d" != root ]; then want_type "$_dev" "$_d" "$_t" || return 0; fi
    [ "$_d" = root ] && [ "$ROOT_OK" != 1 ] && return 0
    if ! options_reproducible "${5:-defaults}"; then
        kept "fstab line for $_t kept: options '$5' would be lost without it"
        return 0
    fi
    _n=$(part_number "$_dev")
    [ "$(first_with_type "$(type_of "$_n")")" = "$_n" ] || return 0
    if [ "$_d" = var ]; then
        if ! _want=$(var_uuid); then
            kept "fstab line for /var kept: no machine-id yet, so $_dev cannot get the partition UUID discovery wants (run again after the first boot)"
            return 0
        fi
        _have=$(sfdisk --part-uuid "$DISK" "$_n" 2>/dev/null | tr 'A-F' 'a-f')
        if [ "$_have" != "$_want" ]; then
            change "$_dev: partition UUID $_have -> $_want (/var is mounted only with the machine's UUID)"
            run sfdisk -q --no-reread --no-tell-kernel --part-uuid "$DISK" "$_n" "$_want"
        fi
    fi
    DROP="$DROP $1"
}

# write_file PATH NEW_TEXT_FILE WHY
write_file() {
    change "$1: $3"
    if [ "$DRY_RUN" = 1 ]; then
        diff -u "$1" "$2" | sed 's/^/    /'
    else
        cat "$2" >"$1.dps-fixup.tmp" && chmod --reference="$1" "$1.dps-fixup.tmp" 2>/dev/null
        mv -f "$1.dps-fixup.tmp" "$1" || FAILED=1
    fi
}

fix_fstab() {
    [ -r /etc/fstab ] || return 0
    DROP=''
    awk '$1 !~ /^#/ && NF >= 2 { print NR, $1, $2, $3, $4 }' /etc/fstab >"$WORK/entries"
    while read -r _nr _spec _target _fstype _opts; do
        fstab_entry "$_nr" "$_spec" "$_target" "$_fstype" "$_opts"
    done <"$WORK/entries"
    [ -n "$DROP" ] || return 0
    _targets=$(for _nr in $DROP; do awk -v n="$_nr" 'NR == n { print $2 }' /etc/fstab; done |
        tr '\n' ',' | sed 's/,$//; s/,/, /g')
    awk -v drop="$DROP " -v mark="$FSTAB_MARK" \
        'index(drop, " " NR " ") { print mark $0; next } { print }' /etc/fstab >"$WORK/fstab"
    write_file /etc/fstab "$WORK/fstab" "drop the lines for $_targets: found by partition type"
}

fix_cmdlines() {
    for _f in /etc/kernel/cmdline /etc/default/grub "$ESP"/loader/entries/*.conf /boot/loader/entries/*.conf; do
        [ -f "$_f" ] || continue
        if edit_cmdline_file "$_f" >"$WORK/cmdline"; then
            _gone=$(awk "$AWK_STRIP"'{ n = split($0, w, /[ \t]+/); for (i = 1; i <= n; i++) if (isroot(w[i])) print w[i] }' "$_f" |
                sed 's/^"//; s/"$//' | sort -u | tr '\n' ' ' | sed 's/ $//')
            write_file "$_f" "$WORK/cmdline" "drop $_gone"
        fi
    done
}

main() {
    DRY_RUN=0
    LOADER=keep
    while [ $# -gt 0 ]; do
        case $1 in
            --dry-run | -n) DRY_RUN=1 ;;
            --loader) LOADER=$2; shift ;;
            --loader=*) LOADER=${1#--loader=} ;;
            *) say "usage: dps-fixup [--dry-run] [--loader keep|systemd-boot|uki-direct|grub2]"; return 2 ;;
        esac
        shift
    done
    case $LOADER in keep | systemd-boot | uki-direct | grub2) ;; *) say "unknown loader: $LOADER"; return 2 ;; esac
    export LC_ALL=C
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    CHANGES=0
    FAILED=0
    WORK=$(mktemp -d) || return 1
    ESP_MOUNTED_BY_US=''
    trap 'rm -rf "$WORK"; [ -z "$ESP_MOUNTED_BY_US" ] || umount "$ESP_MOUNTED_BY_US"' EXIT
    ARCH=$(dps_arch) || { say "unknown architecture $(uname -m)"; return 1; }
    EFI_ARCH=$(efi_arch "$ARCH")
    OS_ID=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"'"'" | head -n 1)
    ROOT=$(realdev "$(findmnt -no SOURCE / | head -n 1 | sed 's/\[.*\]$//')")
    ROOT_N=$(part_number "$ROOT")
    DISK=$(part_disk "$ROOT")
    ROOT_OK=0
    [ -n "$ROOT_N" ] && load_types
    if check_root; then
        find_esp
        setup_loader && ROOT_OK=1
    fi
    fix_fstab
    [ "$ROOT_OK" = 1 ] && fix_cmdlines
    if [ "$FAILED" = 1 ]; then
        say "FAILED: some changes could not be made"
        return 1
    fi
    [ "$CHANGES" = 0 ] && say "ok: nothing to change"
    [ "$DRY_RUN" = 1 ] && [ "$CHANGES" != 0 ] && say "dry run: nothing was changed"
    return 0
}

[ "${DPS_FIXUP_LIB:-0}" = 1 ] || main "$@"
