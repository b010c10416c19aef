#!/bin/sh
# boot-uefi.sh: boot a disk image under UEFI (OVMF/AAVMF) in QEMU, for testers without Python.
#
#   boot-uefi.sh IMAGE [--secure-boot VARS] [--tpm] [--timeout S] [options]
#
# Firmware comes from the QEMU firmware descriptors (docs/interop/firmware.json), read with jq:
# the union of /usr/share/qemu/firmware, /etc/qemu/firmware and $XDG_CONFIG_HOME/qemu/firmware by
# file name (later directories override, an empty file hides), sorted, first match wins.
# The image is never written (writes go to a throw-away qcow2 overlay); the varstore is a private
# copy; swtpm, QEMU and the work directory are removed on exit, Ctrl-C included; swtpm and QEMU
# die with the script even when it is killed outright (SIGKILL: setpriv --pdeathsig, where
# util-linux has it). Drives are JSON block nodes made with jq: a path is one JSON string (a ','
# in it is not an option), the format is given (never probed), and a qcow2's backing file is not
# followed ("backing": null).
#
# Without --timeout the console is interactive on this terminal (Ctrl-A X quits) and logged.
# With --timeout S the VM runs headless; the script waits for --expect (default: a login
# prompt, the dps-composer check record or a power-off; with --check: the check record or a
# power-off), prints the matching line and exits 0, or exits 1 after S seconds or when QEMU
# ends without a match. A check record is taken only when it is whole: its line has ended and
# its trailer (" DPS-COMPOSER-CHECK-END bytes=N sha256=HEX") matches the JSON before it; a
# record that arrived damaged is reported and exits 1.
#
# Options:
#   --secure-boot VARS   Secure Boot firmware (feature secure-boot) with this varstore
#   --vars FILE          varstore to copy instead of the descriptor's template
#   --tpm                attach a TPM 2.0 (swtpm, sha256 bank)
#   --timeout S          headless, give up after S seconds
#   --expect REGEX       (with --timeout) extended regex that ends the wait successfully
#   --check              pass the dps-composer.check credential: an image built by
#                        dps-composer then runs its boot check and prints DPS-COMPOSER-CHECK;
#                        also the systemd-firstboot credentials (locale, keymap, time zone,
#                        a locked root password), so that no first-boot question waits
#   --serial-log FILE    keep the console log here (default: IMAGE.serial.log)
#   --arch ARCH          x86_64 (default: uname -m) or aarch64
#   --accel kvm|tcg      default: kvm when /dev/kvm is usable, else tcg
#   --memory M           default 2048M
#   --smp N              vCPUs; default 2, but 1 under TCG without --tools-root (QEMU before
#                        10 crashed x86 guests patching their own code with two)
#   --tools-root DIR     QEMU, its firmware descriptors (paths taken inside DIR) and swtpm from
#                        this Debian tree, started by the tree's own dynamic loader with its
#                        libraries (see ld.so(8)): e.g. the boot tools tree `dps-composer boot`
#                        makes, ~/.cache/dps-composer/trees/boot-trixie-<arch>-<hash>
#   --firmware-dir DIR   descriptor directory (repeatable; replaces the default three)
#   --dry-run            print the swtpm and QEMU command lines, start nothing
set -eu

PROG=${0##*/}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

IMAGE='' SB_VARS='' VARS='' TPM=0 TIMEOUT='' EXPECT='' CHECK=0 LOG='' DRY=0 FW_DIRS=''
ARCH=$(uname -m) ACCEL='' MEMORY=2048M SMP='' TOOLS=''
CHECK_PREFIX='DPS-COMPOSER-CHECK '
CHECK_END=' DPS-COMPOSER-CHECK-END'
DEFAULT_EXPECT='login: *$|DPS-COMPOSER-CHECK |reboot: Power down'
CHECK_EXPECT='DPS-COMPOSER-CHECK |reboot: Power down'

need_arg() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case $1 in
        --secure-boot) need_arg "$@"; SB_VARS=$2; shift ;;
        --vars) need_arg "$@"; VARS=$2; shift ;;
        --tpm) TPM=1 ;;
        --timeout) need_arg "$@"; TIMEOUT=$2; shift ;;
        --expect) need_arg "$@"; EXPECT=$2; shift ;;
        --check) CHECK=1 ;;
        --serial-log) need_arg "$@"; LOG=$2; shift ;;
        --arch) need_arg "$@"; ARCH=$2; shift ;;
        --accel) need_arg "$@"; ACCEL=$2; shift ;;
        --memory) need_arg "$@"; MEMORY=$2; shift ;;
        --smp) need_arg "$@"; SMP=$2; shift ;;
        --tools-root) need_arg "$@"; TOOLS=$2; shift ;;
        --firmware-dir) need_arg "$@"; FW_DIRS="$FW_DIRS
$2"; shift ;;
        --dry-run) DRY=1 ;;
        -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$IMAGE" ] || die "only one IMAGE, got '$IMAGE' and '$1'"; IMAGE=$1 ;;
    esac
    shift
done
[ -n "$IMAGE" ] || die "usage: $PROG IMAGE [--secure-boot VARS] [--tpm] [--timeout S] (see --help)"
[ -f "$IMAGE" ] || die "$IMAGE: no such image file"
[ -z "$SB_VARS" ] || [ -f "$SB_VARS" ] || die "$SB_VARS: no such varstore"
[ -z "$VARS" ] || [ -f "$VARS" ] || die "$VARS: no such varstore"
case $TIMEOUT in '' | *[!0-9]*) [ -z "$TIMEOUT" ] || die "--timeout: whole seconds, not '$TIMEOUT'" ;; esac
case $SMP in '' | [1-9] | [1-9][0-9]) ;; *) die "--smp: a number of vCPUs, not '$SMP'" ;; esac
command -v jq >/dev/null 2>&1 || die "jq not found (apt-get install jq)"

case $ARCH in
    # x86: q35 without the devices a boot test never uses (SMBus, PS/2, VMware's port, AHCI;
    # the disk is virtio) and, under TCG, "max" without svm/vmx, as `dps-composer boot` runs it:
    # the guest loads no modules for them on its emulated CPU
    x86_64 | amd64) ARCH=x86_64 MACHINE=q35 LEAN=,smbus=off,i8042=off,vmport=off,sata=off
        GLOB='^pc-q35' TPMDEV=tpm-crb TCG_CPU=max,svm=off,vmx=off ;;
    aarch64 | arm64) ARCH=aarch64 MACHINE=virt LEAN= GLOB='^virt' TPMDEV=tpm-tis-device TCG_CPU=max ;;
    *) die "unsupported architecture $ARCH (x86_64, aarch64)" ;;
esac

# --- QEMU and swtpm: the host's, or a tree's run by its own loader --------------------------
RUN_IN_TREE='' FW_ROOT=''
if [ -n "$TOOLS" ]; then
    case $TOOLS in *[[:space:]]*) die "--tools-root: a path without blanks, not '$TOOLS'" ;; esac
    LIBDIR=$TOOLS/usr/lib/$(uname -m)-linux-gnu
    LOADER=''
    for f in "$LIBDIR"/ld-linux-*.so.*; do [ -e "$f" ] && LOADER=$f && break; done
    [ -n "$LOADER" ] || die "$TOOLS: no dynamic loader in $LIBDIR"
    [ -f "$TOOLS/usr/bin/qemu-system-$ARCH" ] || die "$TOOLS: no usr/bin/qemu-system-$ARCH"
    RUN_IN_TREE="$LOADER --library-path $LIBDIR:$TOOLS/lib/$(uname -m)-linux-gnu"
    QEMU_MODULE_DIR=$LIBDIR/qemu  # its loadable modules, not the host's
    export QEMU_MODULE_DIR
    if [ -z "$FW_DIRS" ]; then
        FW_DIRS=$TOOLS/usr/share/qemu/firmware FW_ROOT=$TOOLS
    fi
fi
# program NAME: the words that start NAME (with --tools-root: the tree's, by its loader);
# no word has a blank (checked above), so callers may split them unquoted
program() {
    if [ -n "$TOOLS" ]; then printf '%s %s' "$RUN_IN_TREE" "$TOOLS/usr/bin/$1"; else printf '%s' "$1"; fi
}

# --- firmware from the descriptors ----------------------------------------------------------
if [ -z "$FW_DIRS" ]; then
    FW_DIRS="/usr/share/qemu/firmware
/etc/qemu/firmware
${XDG_CONFIG_HOME:-${HOME:-/root}/.config}/qemu/firmware"
fi

# every descriptor by file name, the most specific directory winning; "name<TAB>path", sorted
descriptors() {
    printf '%s\n' "$FW_DIRS" | while IFS= read -r d; do
        [ -n "$d" ] && [ -d "$d" ] || continue
        for f in "$d"/*.json; do [ -e "$f" ] && printf '%s\t%s\n' "${f##*/}" "$f"; done
    done | awk -F '\t' '{ path[$1] = $2 } END { for (n in path) print n "\t" path[n] }' | sort
}

WANT_SB=false
[ -n "$SB_VARS" ] && WANT_SB=true
FW_CODE='' FW_CODE_FMT='' FW_VARS='' FW_VARS_FMT='' FW_SMM='' FW_DESC=''
TAB=$(printf '\t')
# pick_firmware STRICT: the first matching descriptor; STRICT=true also rejects descriptors
# whose template has keys enrolled (our own varstore replaces it anyway)
pick_firmware() {
    while IFS="$TAB" read -r name path; do
        [ -s "$path" ] || continue  # an empty file hides the name
        row=$(jq -r --arg arch "$ARCH" --arg glob "$GLOB" --argjson sb "$WANT_SB" --argjson strict "$1" '
            select((."interface-types" // []) | index("uefi"))
            | select(any(.targets[]?; .architecture == $arch and any(.machines[]?; test($glob))))
            | select(.mapping.device == "flash" and ((.mapping.mode // "split") == "split"))
            | select((((.features // []) | index("secure-boot")) != null) == $sb)
            | select(($strict | not) or (((.features // []) | index("enrolled-keys")) == null))
            | [.mapping.executable.filename, (.mapping.executable.format // "raw"),
               .mapping."nvram-template".filename, (.mapping."nvram-template".format // "raw"),
               (((.features // []) | index("requires-smm")) != null)] | @tsv' "$path" 2>/dev/null) || continue
        [ -n "$row" ] || continue
        IFS="$TAB" read -r code code_fmt vars vars_fmt smm <<EOF
$row
EOF
        code=$FW_ROOT$code vars=$FW_ROOT$vars  # a tree's descriptors name files in the tree
        [ -f "$code" ] && [ -f "$vars" ] || continue
        FW_CODE=$code FW_CODE_FMT=$code_fmt FW_VARS=$vars FW_VARS_FMT=$vars_fmt FW_SMM=$smm
        FW_DESC=$path
        return 0
    done <<EOF
$(descriptors)
EOF
    return 1
}
if [ -n "$SB_VARS" ]; then
    pick_firmware true || pick_firmware false || true
else
    pick_firmware false || true
fi
[ -n "$FW_CODE" ] || die "no UEFI firmware descriptor for $ARCH $MACHINE $([ "$WANT_SB" = true ] && echo with || echo without) Secure Boot (install ovmf)"
say "firmware: $FW_DESC ($FW_CODE)"
[ -z "$SB_VARS" ] || VARS=$SB_VARS
[ -n "$VARS" ] || VARS=$FW_VARS
[ "$VARS" = "$FW_VARS" ] || FW_VARS_FMT=raw
case $(dd if="$VARS" bs=3 count=1 2>/dev/null) in QFI) FW_VARS_FMT=qcow2 ;; esac

case $(dd if="$IMAGE" bs=3 count=1 2>/dev/null) in QFI) DISK_FMT=qcow2 ;; *) DISK_FMT=raw ;; esac
if [ -z "$ACCEL" ]; then
    if [ -w /dev/kvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case $ACCEL in kvm) CPU=host ;; tcg) CPU=$TCG_CPU ;; *) die "--accel: kvm or tcg, not '$ACCEL'" ;; esac
# one vCPU under TCG with the host's QEMU: before QEMU 10 its multi-threaded TCG crashed x86
# guests patching their own code (int3); two with a tree's (Debian trixie's QEMU 10, as
# `dps-composer boot` does)
if [ -z "$SMP" ]; then
    SMP=2
    [ "$ACCEL" = kvm ] || [ -n "$TOOLS" ] || SMP=1
fi
[ -n "$LOG" ] || LOG=$IMAGE.serial.log
if [ -z "$EXPECT" ]; then
    if [ "$CHECK" = 1 ]; then EXPECT=$CHECK_EXPECT; else EXPECT=$DEFAULT_EXPECT; fi
fi

# --- work directory, cleanup ----------------------------------------------------------------
if [ "$DRY" = 1 ]; then
    WORK=${TMPDIR:-/tmp}/boot-uefi.DRYRUN
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/boot-uefi.XXXXXX")
fi
QEMU_PID='' SWTPM_PID=''
# Children get SIGKILL when this script dies, however it dies (no trap runs on SIGKILL).
DIE_WITH_US=''
if command -v setpriv >/dev/null 2>&1 && setpriv --pdeathsig KILL true 2>/dev/null; then
    DIE_WITH_US='setpriv --pdeathsig KILL --'
fi
# our own background child: TERM, KILL after 10 s, and reap it (a zombie answers kill -0).
# The timer holds none of our output (a caller reading it to its end would wait for the
# timer's sleep) and kills only a process that is still our child (no reused pid).
stop_child() {
    kill "$1" 2>/dev/null
    (
        sleep 10
        [ "$(ps -o ppid= -p "$1" | tr -d ' ')" = "$$" ] && kill -9 "$1"
    ) </dev/null >/dev/null 2>&1 &
    killer=$!
    wait "$1" 2>/dev/null
    kill "$killer" 2>/dev/null
}
cleanup() {
    set +e  # a process that is already gone must not stop the cleanup
    [ -z "$QEMU_PID" ] || stop_child "$QEMU_PID"
    [ -z "$SWTPM_PID" ] || stop_child "$SWTPM_PID"
    [ "$DRY" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the QEMU command line (built in "$@") --------------------------------------------------
# blockdev NODE DRIVER FILE READ-ONLY [EXTRA-JSON]: one -blockdev argument
blockdev() {
    jq -cn --arg n "$1" --arg d "$2" --arg f "$3" --argjson ro "$4" --argjson x "${5:-null}" \
        '{"node-name": $n, driver: $d, "read-only": $ro,
          file: {driver: "file", filename: $f, "read-only": $ro}} + ($x // {})'
}
NO_BACKING=null
[ "$DISK_FMT" != qcow2 ] || NO_BACKING='{"backing": null}'
# shellcheck disable=SC2046 # program's words have no blanks
set -- $(program "qemu-system-$ARCH")
[ -z "$TOOLS" ] || set -- "$@" -L "$TOOLS/usr/share/qemu"  # its option ROMs, not the host's
if [ "$FW_SMM" = true ]; then
    set -- "$@" -machine "$MACHINE,pflash0=pflash0,pflash1=pflash1$LEAN,smm=on" \
        -global driver=cfi.pflash01,property=secure,value=on
else
    set -- "$@" -machine "$MACHINE,pflash0=pflash0,pflash1=pflash1$LEAN"
fi
set -- "$@" -accel "$ACCEL" -cpu "$CPU" -m "$MEMORY" -smp "$SMP" -nodefaults -no-user-config
set -- "$@" -blockdev "$(blockdev pflash0 "$FW_CODE_FMT" "$FW_CODE" true)"
set -- "$@" -blockdev "$(blockdev pflash1 "$FW_VARS_FMT" "$WORK/vars.fd" false)"
set -- "$@" -blockdev "$(blockdev disk0-base "$DISK_FMT" "$IMAGE" true "$NO_BACKING")"
set -- "$@" -blockdev "$(blockdev disk0 qcow2 "$WORK/overlay.qcow2" false \
    '{"backing": "disk0-base", "cache": {"no-flush": true}}')"
set -- "$@" -device virtio-blk-pci,drive=disk0,bootindex=1 -device virtio-rng-pci
if [ -n "$TIMEOUT" ]; then
    set -- "$@" -display none -chardev "file,id=con,path=$LOG" -serial chardev:con
else
    set -- "$@" -display none -chardev "stdio,id=con,mux=on,signal=off,logfile=$LOG" \
        -serial chardev:con -mon chardev=con,mode=readline
fi
if [ "$CHECK" = 1 ]; then
    set -- "$@" -smbios type=11,value=io.systemd.credential:dps-composer.check=1
    for cred in firstboot.locale=C.UTF-8 firstboot.keymap=us firstboot.timezone=UTC \
        'passwd.hashed-password.root=!*'; do
        set -- "$@" -smbios "type=11,value=io.systemd.credential:$cred"
    done
    if [ "$ARCH" = x86_64 ]; then
        set -- "$@" -chardev "file,id=check,path=$WORK/check.log" -serial chardev:check
    else
        set -- "$@" -chardev "file,id=check,path=$WORK/check.log" -device virtio-serial-pci \
            -device virtserialport,chardev=check,name=dps-composer.check
    fi
fi
SWTPM_SOCK=$WORK/swtpm.sock
if [ "$TPM" = 1 ]; then
    set -- "$@" -chardev "socket,id=chrtpm,path=$SWTPM_SOCK" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device "$TPMDEV,tpmdev=tpm0"
fi

if [ "$DRY" = 1 ]; then
    [ "$TPM" = 1 ] && echo "$(program swtpm) socket --tpm2 --tpmstate dir=$WORK/tpm --ctrl type=unixio,path=$SWTPM_SOCK"
    printf '%s' "$1"
    shift
    for a in "$@"; do printf ' %s' "$a"; done
    printf '\n'
    exit 0
fi

cp "$VARS" "$WORK/vars.fd"
# the overlay the guest writes to: as big as the image, recording no backing file itself
SIZE=$(qemu-img info --output=json "json:$(blockdev img "$DISK_FMT" "$IMAGE" true "$NO_BACKING")" |
    jq '."virtual-size"') || die "qemu-img cannot read $IMAGE"
qemu-img create -q -f qcow2 "$WORK/overlay.qcow2" "$SIZE" || die "qemu-img create failed"
: >"$LOG"
if [ "$TPM" = 1 ]; then
    [ -n "$TOOLS" ] || command -v swtpm >/dev/null 2>&1 || die "swtpm not found (apt-get install swtpm swtpm-tools)"
    mkdir -p "$WORK/tpm"
    : >"$WORK/swtpm_setup.conf"
    # swtpm_setup starts swtpm itself: a tree's, by the command line --tpm gives (split at blanks)
    ENGINE=''
    [ -z "$TOOLS" ] || ENGINE="$(program swtpm) socket"
    # shellcheck disable=SC2046 # program's words have no blanks
    $(program swtpm_setup) ${ENGINE:+--tpm "$ENGINE"} --tpm2 --tpmstate "$WORK/tpm" --pcr-banks sha256 \
        --config "$WORK/swtpm_setup.conf" --logfile "$WORK/swtpm_setup.log" >/dev/null ||
        die "swtpm_setup failed (see $WORK/swtpm_setup.log)"
    # shellcheck disable=SC2046 # program's words have no blanks
    $DIE_WITH_US $(program swtpm) socket --tpm2 --tpmstate "dir=$WORK/tpm" \
        --ctrl "type=unixio,path=$SWTPM_SOCK" --log "file=$WORK/swtpm.log" </dev/null &
    SWTPM_PID=$!
    i=0
    while [ ! -S "$SWTPM_SOCK" ]; do
        i=$((i + 1)); [ $i -le 50 ] || die "swtpm did not create $SWTPM_SOCK"
        kill -0 "$SWTPM_PID" 2>/dev/null || die "swtpm exited (see $WORK/swtpm.log)"
        sleep 0.1
    done
    say "swtpm: pid $SWTPM_PID"
fi

say "serial log: $LOG"
if [ -z "$TIMEOUT" ]; then
    $DIE_WITH_US "$@"
    exit $?
fi

$DIE_WITH_US "$@" >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
say "qemu: pid $QEMU_PID, waiting up to $TIMEOUT s for /$EXPECT/"
start=$(date +%s)
ESC=$(printf '\033')
# settled FILE: the log as far as it can be judged, in $WORK/settled: escapes and CRs gone, and
# without a last, unfinished line that holds the start of a check record (the guest may still
# be writing it). Other unfinished lines stay: prompts such as "login: " never end.
settled() {
    tr -d '\r' <"$1" | sed "s/$ESC\[[0-9;=?]*[A-Za-z]//g" >"$WORK/settled"
    if [ -n "$(tail -c 1 "$WORK/settled")" ] &&
        tail -n 1 "$WORK/settled" | grep -q -a -F -e "$CHECK_PREFIX"; then
        sed -i '$d' "$WORK/settled"
    fi
}
# record_intact LINE: the check record on LINE is whole: its trailer's length and sha256 match
# the JSON before it (an older image's record without a trailer: the JSON must parse)
record_intact() {
    _body=${1#*"$CHECK_PREFIX"}
    case $_body in
        *"$CHECK_END bytes="*" sha256="*) ;;
        *) printf '%s' "$_body" | jq -e 'type == "object"' >/dev/null 2>&1; return ;;
    esac
    _trailer=${_body##*"$CHECK_END "}
    _body=${_body%"$CHECK_END "*}
    _want_bytes=${_trailer#bytes=}
    _want_bytes=${_want_bytes%% *}
    _want_sum=${_trailer##*sha256=}
    [ "$(printf '%s' "$_body" | wc -c | tr -d ' ')" = "$_want_bytes" ] &&
        [ "$(printf '%s' "$_body" | sha256sum | cut -d ' ' -f 1)" = "$_want_sum" ]
}
DAMAGED=''
found() {
    for f in "$WORK/check.log" "$LOG"; do
        [ -f "$f" ] || continue
        settled "$f"
        line=$(grep -a -E -m 1 -e "$EXPECT" "$WORK/settled" || true)
        [ -n "$line" ] || continue
        case $line in *"$CHECK_PREFIX"*) record_intact "$line" || DAMAGED=$f ;; esac
        printf '%s\n' "$line"
        return 0
    done
    return 1
}
done_or_damaged() {
    [ -z "$DAMAGED" ] && exit 0
    say "the check record in $DAMAGED arrived damaged (its length or sha256 differ)"
    exit 1
}
while :; do
    if found; then done_or_damaged; fi
    if ! kill -0 "$QEMU_PID" 2>/dev/null; then
        wait "$QEMU_PID" || true
        QEMU_PID=''
        found && done_or_damaged
        say "QEMU exited without /$EXPECT/: $(tail -n 3 "$WORK/qemu.log" | tr '\n' ' ')"
        exit 1
    fi
    if [ $(($(date +%s) - start)) -ge "$TIMEOUT" ]; then
        say "timeout after $TIMEOUT s without /$EXPECT/ (log: $LOG)"
        exit 1
    fi
    sleep 1
done
