# uki-virt: put the UKI of kernel @KVER@ on the ESP, or take it off again.
# The same functions serve the .deb (postinst/postrm) and the RPM (%posttrans/%postun),
# as Fedora's kernel-uki-virt does: kernel-install with layout=uki where a real ESP is
# mounted, else a copy to $ESP/EFI/Linux/<entry-token>-<kver>.efi with the ESP at
# /efi, /boot/efi or /boot (the first that exists). What was done is recorded under
# /var/lib/uki-virt, so removal undoes exactly that.
UKI_VIRT_KVER='@KVER@'
UKI_VIRT_IMAGE="/usr/lib/modules/$UKI_VIRT_KVER/vmlinuz-virt.efi"
UKI_VIRT_STATE="/var/lib/uki-virt/$UKI_VIRT_KVER"

uki_virt_token() {
    if [ -s /etc/kernel/entry-token ]; then
        head -n1 /etc/kernel/entry-token
        return
    fi
    osrel=/etc/os-release
    [ -e "$osrel" ] || osrel=/usr/lib/os-release
    (. "$osrel" && echo "${IMAGE_ID:-${ID:-linux}}")
}

uki_virt_esp() {
    for dir in /efi /boot/efi /boot; do
        if [ -d "$dir" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

uki_virt_copy() {
    mkdir -p "${1%/*}"
    cp "$UKI_VIRT_IMAGE" "$1.new"
    mv "$1.new" "$1"
    echo "$1" > "$UKI_VIRT_STATE"
}

uki_virt_install() {
    [ -e "$UKI_VIRT_IMAGE" ] || return 0
    mkdir -p /var/lib/uki-virt
    # an upgrade or reinstall refreshes the copy made before, under the same name
    if [ -s "$UKI_VIRT_STATE" ] && [ "$(cat "$UKI_VIRT_STATE")" != kernel-install ]; then
        dest=$(cat "$UKI_VIRT_STATE")
        if [ -d "${dest%/EFI/Linux/*}" ]; then
            uki_virt_copy "$dest"
            return 0
        fi
    fi
    if command -v kernel-install >/dev/null 2>&1 && command -v bootctl >/dev/null 2>&1 \
        && bootctl --print-esp-path >/dev/null 2>&1; then
        KERNEL_INSTALL_LAYOUT=uki kernel-install add "$UKI_VIRT_KVER" "$UKI_VIRT_IMAGE"
        echo kernel-install > "$UKI_VIRT_STATE"
        return 0
    fi
    if ! esp=$(uki_virt_esp); then
        echo "uki-virt: no ESP at /efi, /boot/efi or /boot; $UKI_VIRT_IMAGE not copied" >&2
        return 0
    fi
    uki_virt_copy "$esp/EFI/Linux/$(uki_virt_token)-$UKI_VIRT_KVER.efi"
}

uki_virt_remove() {
    [ -e "$UKI_VIRT_STATE" ] || return 0
    done_by=$(cat "$UKI_VIRT_STATE")
    if [ "$done_by" = kernel-install ]; then
        KERNEL_INSTALL_LAYOUT=uki kernel-install remove "$UKI_VIRT_KVER" || true
    else
        rm -f "$done_by"
    fi
    rm -f "$UKI_VIRT_STATE"
    rmdir /var/lib/uki-virt 2>/dev/null || true
}
