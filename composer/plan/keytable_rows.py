"""The rows of the key table (composer/plan/keytable.py): every key of osbuild's blueprint
schema and the composer's extension tables, and what each target does with it."""

from __future__ import annotations

from composer.plan.keytable_cells import Row, no, same, yes

_NO_MODULES_DEB = "module streams are a dnf concept"
_NO_CONTAINERS = "embedding container images is not implemented"
_NOT_INSTALLER = "dps-composer builds disk images, not installers"
_UKI_CMDLINE = (
    "Fedora's kernel-uki-virt is a prebuilt UKI with its own command line "
    "(console=tty0 console=ttyS0), which no per-image setting changes; / is found by its "
    "partition type, so no root= is needed"
)
_FEDORA_KERNEL = (
    "only the default ('kernel'): the image boots Fedora's generic kernel-uki-virt UKI, and "
    "another kernel package has no UKI"
)

ROWS: tuple[Row, ...] = (
    Row(
        "name, description, version",
        *same(
            "name the outputs; recorded in the manifest; `version` also makes versioned GPT labels"
        ),
        yes("the header comment"),
    ),
    Row(
        "distro",
        yes('`debian-13`; `""` means the default distribution, debian-13 (as in osbuild)'),
        yes("`fedora-40` … `fedora-43`, `centos-stream-9`, `centos-stream-10`"),
        yes("`fedora-N`: pykickstart's FN handler checks the result"),
    ),
    Row(
        "architecture",
        *same("`x86_64`, `aarch64`: DPS root and /usr types follow it"),
        yes("the mirror URLs' architecture"),
    ),
    Row(
        "packages[].name",
        yes("installed with apt (mmdebstrap); checked against the archive after resolution"),
        yes("installed with dnf; `@group` and `@module:stream` too"),
        yes("a `%packages` line"),
    ),
    Row(
        "packages[].version",
        yes(
            "a glob (`3.*`) is resolved against the archive (highest "
            "match) and pinned `name=version`; no match is an error listing what the archive has"
        ),
        yes("`name-version` for dnf (dnf reads the glob)"),
        yes("`name-version` in `%packages`"),
    ),
    Row(
        "modules[]",
        yes("installed like packages (osbuild resolves them as packages)"),
        yes("installed like packages"),
        yes("`%packages` lines, like packages"),
    ),
    Row(
        "enabled_modules[]",
        no(_NO_MODULES_DEB),
        no(
            "module streams are not implemented "
            "for dnf image builds (Fedora has had none since release 39)"
        ),
        no(
            "Fedora has had no module streams since release 39: pykickstart deprecates the "
            "`module` command, which has no effect"
        ),
    ),
    Row(
        "groups[]",
        no(
            "package groups are a dnf/comps concept; list the packages (or a "
            "Debian task-* metapackage) under [[packages]]"
        ),
        yes("`@name` for dnf"),
        yes("`@name` in `%packages`"),
    ),
    Row("containers[]", no(_NO_CONTAINERS), no(_NO_CONTAINERS), no(_NO_CONTAINERS)),
    Row(
        "minimal",
        yes("accepted: Debian images never get Recommends"),
        yes("accepted: dnf installs no weak dependencies"),
        yes("`%packages --exclude-weakdeps`"),
    ),
    Row(
        "customizations.hostname",
        *same("`/etc/hostname`, `/etc/hosts`"),
        yes("`network --hostname`"),
    ),
    Row(
        "customizations.kernel.name",
        yes("a `linux-image-*` package replacing `linux-image-<arch>` (`kernel`: the default)"),
        no(_FEDORA_KERNEL),
        no(_FEDORA_KERNEL),
    ),
    Row(
        "customizations.kernel.append",
        yes(
            "appended to the UKI's command line (uki-virt: "
            "built into the packaged UKI); `root=`, `mount.usr=`, `rootflags=` and control "
            "characters refused"
        ),
        no(_UKI_CMDLINE),
        no(_UKI_CMDLINE),
    ),
    Row(
        "customizations.sshkey[]",
        *same(
            "appended to the user's `~/.ssh/authorized_keys`; the "
            "user must exist (base system, blueprint or a package)"
        ),
        yes("`sshkey --username=`"),
    ),
    Row(
        "customizations.user[].name",
        *same("`useradd`; an existing user (`root`) is changed with `usermod`, as osbuild does"),
        yes("`user --name=`; `root` becomes `rootpw`"),
    ),
    Row(
        "customizations.user[].password",
        *same(
            "a crypt(3) hash as is; plain text hashed (yescrypt) at build time, masked in `plan`"
        ),
        yes("`--password … --iscrypted/--plaintext` (`rootpw` for root)"),
    ),
    Row(
        "customizations.user[].key", *same("`~/.ssh/authorized_keys`"), yes("`sshkey --username=`")
    ),
    Row(
        "customizations.user[].generate_password",
        *same(
            "(extension) a password derived from the build cache's secret, written 0600 to "
            "`OUTPUT/NAME.USER.password`"
        ),
        no("only `build` generates passwords (from its cache's secret); give `password`", False),
    ),
    Row("customizations.user[].description", *same("`--comment`"), yes("`--gecos=`")),
    Row("customizations.user[].home", *same("`--home-dir`"), yes("`--homedir=`")),
    Row("customizations.user[].shell", *same("`--shell`"), yes("`--shell=`")),
    Row(
        "customizations.user[].groups",
        *same(
            "`--groups`; names the target lacks are mapped or created (docs/blueprint.md: groups)"
        ),
        yes("`--groups=` (Debian names mapped: sudo → wheel)"),
    ),
    Row(
        "customizations.user[].uid",
        *same("`--uid` (an existing user's uid cannot change)"),
        yes("`--uid=`"),
    ),
    Row("customizations.user[].gid", *same("`--gid`"), yes("`--gid=`")),
    Row(
        "customizations.user[].expiredate",
        *same("account expiry (days since 1970-01-01)"),
        yes("`chage -E` in `%post`"),
    ),
    Row(
        "customizations.user[].force_password_reset",
        *same("password expired (`chage --lastday 0`)"),
        yes("`chage -d 0` in `%post`"),
    ),
    Row(
        "customizations.group[]",
        *same("`groupadd --force` (an existing group is kept, as osbuild does)"),
        yes("`group --name= --gid=`"),
    ),
    Row(
        "customizations.timezone.timezone",
        yes(
            "`/etc/localtime`; adds `tzdata`, or "
            "`tzdata-legacy` for the names only it has; checked against the zone list"
        ),
        yes("`/etc/localtime`; adds `tzdata`; checked against the zone list"),
        yes("`timezone`"),
    ),
    Row(
        "customizations.timezone.ntpservers",
        yes("`NTP=` for systemd-timesyncd (adds it)"),
        yes("`NTP=` for systemd-timesyncd (in systemd-udev), enabled"),
        yes("`timesource --ntp-server=`"),
    ),
    Row(
        "customizations.locale.languages",
        yes(
            "generated with `locale-gen` (adds `locales`); "
            "checked against glibc's list; the first is `LANG`"
        ),
        yes("`glibc-langpack-<lang>` packages; checked against glibc's list; the first is `LANG`"),
        yes("`lang FIRST --addsupport=OTHERS`"),
    ),
    Row(
        "customizations.locale.keyboard",
        *same("`KEYMAP=` in `/etc/vconsole.conf`"),
        yes("`keyboard --vckeymap=`"),
    ),
    Row(
        "customizations.firewall",
        no(
            "Debian images carry no firewalld; install a firewall "
            "package in [[packages]] and configure it with [[customizations.files]]"
        ),
        no(
            "not implemented for dnf images (firewalld's offline configuration); "
            "`dps-composer kickstart` renders it"
        ),
        yes(
            "`firewall --enabled --port= --service= --remove-service=`; zones with "
            "`firewall-offline-cmd` in `%post`"
        ),
    ),
    Row(
        "customizations.services",
        *same(
            "`systemctl --root` enable / disable / mask; "
            "enabled and disabled units must be shipped (checked after resolution)"
        ),
        yes("`services --enabled= --disabled=`; masked with `systemctl mask` in `%post`"),
    ),
    Row(
        "customizations.filesystem[]",
        *same(
            "one partition each, typed by its mount point (docs/blueprint.md: partition layouts)"
        ),
        yes("`part MOUNTPOINT --size=`"),
    ),
    Row(
        "customizations.disk",
        *same("the partition layout (docs/blueprint.md: partition layouts)"),
        yes(
            "`part` lines, `label` as `--label`; `part_label`, `part_uuid`, flags and "
            "non-DPS `part_type` with `sfdisk` in `%post` (DPS types: dps-fixup); erofs "
            "refused (anaconda cannot make it)"
        ),
    ),
    Row(
        "customizations.directories[]",
        *same(
            "created: `path`, `mode`, `user`, `group`, `ensure_parents`; links on the way "
            "followed inside the image; paths under `/run`, `/var/run`, `/var/lock`, `/tmp`, "
            "`/dev`, `/proc`, `/sys` refused (mounted over at boot)"
        ),
        yes("`mkdir`, `chmod`, `chown` in `%post`"),
    ),
    Row(
        "customizations.files[]",
        *same(
            "written: `path`, `mode`, `user`, `group`, `data` or `uri` (file:///… or "
            "file:relative, read when the blueprint is loaded, only from the blueprint's own "
            "directory); links on the way followed inside the image, a link at the path "
            "replaced; paths refused as for directories"
        ),
        yes("written in `%post`"),
    ),
    Row(
        "customizations.repositories[]",
        no(
            "these are dnf/yum repository definitions; the "
            "apt target uses the distribution's archive"
        ),
        yes(
            "the repositories the tree is "
            "installed from (instead of the defaults), and `/etc/yum.repos.d/<filename>` in the "
            "image as in osbuild"
        ),
        yes(
            "`repo --name= --baseurl=/--mirrorlist=/--metalink=`, and "
            "`/etc/yum.repos.d/<filename>` in `%post`"
        ),
    ),
    Row(
        "customizations.cacerts",
        yes("installed with `update-ca-certificates` (adds ca-certificates)"),
        yes("`/etc/pki/ca-trust/source/anchors/`, `update-ca-trust`"),
        yes("the same in `%post`"),
    ),
    Row(
        "customizations.fips",
        no("Debian has no FIPS mode", False),
        no(
            "not implemented for dnf images: FIPS needs fips=1 in the prebuilt UKI's command line",
            False,
        ),
        no(
            "a kickstart has no FIPS command: FIPS mode is chosen by booting the installer "
            "with fips=1",
            False,
        ),
    ),
    Row(
        "customizations.sshd",
        *same("`/etc/ssh/sshd_config.d/50-dps-composer.conf`"),
        yes("the same file in `%post`"),
    ),
    Row(
        "customizations.installation_device",
        no(_NOT_INSTALLER),
        no(_NOT_INSTALLER),
        yes("`ignoredisk --only-use=` and `clearpart --drives=`: the disk installed to"),
    ),
    Row(
        "customizations.partitioning_mode",
        *(
            no("only plain partitions can be discovered by DPS ('raw'); LVM cannot", "raw")
            for _ in range(3)
        ),
    ),
    Row(
        "customizations.fdo",
        *(no("FIDO Device Onboarding is for edge installers") for _ in range(3)),
    ),
    Row(
        "customizations.openscap",
        *(
            no(
                "no OpenSCAP remediation at build time (no "
                "scap-security-guide datastreams are applied)"
            )
            for _ in range(3)
        ),
    ),
    Row(
        "customizations.ignition",
        *(no("Ignition is for Fedora CoreOS/RHEL for Edge") for _ in range(3)),
    ),
    Row(
        "customizations.installer",
        no(_NOT_INSTALLER),
        no(_NOT_INSTALLER),
        no("installer settings belong to the installer image, not to a kickstart"),
    ),
    Row(
        "customizations.rpm",
        no("RPM keys do not apply to apt targets"),
        no("importing RPM keys is not implemented"),
        no("importing RPM keys is not implemented"),
    ),
    Row(
        "customizations.rhsm",
        *(no("Red Hat Subscription Manager settings are not implemented") for _ in range(3)),
    ),
    Row("customizations.containers-storage", *(no(_NO_CONTAINERS) for _ in range(3))),
    Row(
        "customizations.firstboot",
        *(
            no("first-boot scripts are not implemented; ship a unit with [[customizations.files]]")
            for _ in range(3)
        ),
    ),
    Row(
        "customizations.dnf",
        no("dnf settings do not apply to apt targets"),
        no("dnf settings of the image are not implemented"),
        no("dnf settings of the image are not implemented"),
    ),
    Row("customizations.iso", *(no("dps-composer builds disk images, not ISOs") for _ in range(3))),
    Row(
        "boot.loader, boot.timeout",
        *same("the boot chain (docs/design.md: boot chains)"),
        yes(
            "grub2: `bootloader --timeout`; systemd-boot and uki-direct set up in `%post` "
            "(dps-fixup), systemd-boot's `timeout` in its loader.conf"
        ),
    ),
    Row(
        "boot.cmdline",
        yes("the UKI's command line"),
        no(_UKI_CMDLINE, "console=tty0 console=ttyS0"),
        no(_UKI_CMDLINE, "console=tty0 console=ttyS0"),
    ),
    Row(
        "secureboot",
        *same("signs the boot chain, ships the varstore"),
        no(
            "anaconda cannot sign with your keys: Fedora's UKI and boot loader are signed by "
            "Fedora",
            False,
        ),
    ),
    Row(
        "measured",
        yes(
            "`sign_policy`: the UKI carries `.pcrsig` (systemd-measure sign, every boot phase) "
            "and `.pcrpkey`; `sealed`: /srv or /home created and LUKS2-encrypted at first boot "
            '(systemd-repart `Encrypt=tpm2`), bound to that policy; `recovery = "console"`: '
            "a recovery key per volume, shown once on the console at first boot "
            "(docs/measured.md)"
        ),
        no(
            "Fedora's kernel-uki-virt is a prebuilt UKI: its sections cannot be re-signed with "
            "your PCR key",
            False,
        ),
        no(
            "the installed system boots Fedora's prebuilt UKI, which has no PCR signature by "
            "your key",
            False,
        ),
    ),
    Row(
        "image.size, image.esp_size",
        *same("the disk and ESP sizes"),
        yes("`esp_size`: the ESP's `part` size; `size`: not applicable (the machine's disk)"),
    ),
    Row("image.machine_id", *same("`/etc/machine-id`"), yes("`/etc/machine-id` in `%post`")),
    Row(
        "image.formats, image.qcow2_compression, image.seed, validate",
        *same("build outputs and the boot check"),
        yes("named in a comment: they describe build outputs, nothing to install"),
    ),
)
