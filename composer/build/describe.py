"""The manifest of a built image (composer/manifest/model.py), made once from what its stages
made: the plan's layout and expectations, the UKI, the packages, the outputs, the boot chain,
and the firmware's PCR 4 and 7 predicted from the final (signed) ESP files and the varstore
the image boots with (composer/measure/predict.py)."""

from __future__ import annotations

from composer.build.context import Context
from composer.build.fs.partitions import manifest_entry
from composer.build.pcrpolicy import manifest_policy
from composer.core import version
from composer.core.hashing import sha256_file
from composer.manifest import model
from composer.measure import predict
from composer.measure.pcr11 import PHASES, predict_pcr11, uki_sections

BOOTED_PHASE = PHASES[-1]  # the check runs once the system is up: every phase is measured


def manifest(ctx: Context) -> model.Manifest:
    plan, made = ctx.plan, ctx.made
    assert made.uki is not None and made.chain is not None and made.esp_tree is not None
    chain, uki = made.chain, made.uki
    pcr11 = predict_pcr11(uki_sections(uki.path), banks=("sha256",))
    policy = manifest_policy(plan, uki.path, ctx.pcr_key)
    predicted = predict.predict(
        loader=plan.loader,
        esp=made.esp_tree,
        uki_rel=made.uki_rel,
        loaders=chain.loaders,
        efi_arch=plan.arch.efi,
        varstore=chain.varstore,
    )
    return model.Manifest(
        manifest_version=model.MANIFEST_VERSION,
        name=plan.name,
        version=plan.version,
        architecture=plan.architecture,
        distro=plan.distro,
        seed=plan.seed,
        disk=model.Disk(
            size=plan.disk_size,
            guid=plan.disk_guid,
            partitions=[manifest_entry(p) for p in plan.partitions],
            fstab=list(plan.fstab),
        ),
        boot=chain.boot(),
        uki=model.Uki(
            path=made.uki_rel,
            sha256=sha256_file(uki.path),
            size=uki.path.stat().st_size,
            kernel_version=uki.kernel_version,
            cmdline=plan.cmdline,
        ),
        packages=made.packages,
        outputs=made.outputs,
        expect=model.Expect(
            root_type_uuid=plan.root_type_uuid,
            tpm=plan.validate_tpm,
            secure_boot=True if chain.keys is not None else None,
            pcrs={"11": pcr11["sha256"][BOOTED_PHASE], **predict.enforced_pcrs(predicted)},
            dps_mounts=True,
            grow_root=plan.grow_root,
            pcr_policy=policy.public_key_sha256 if policy else None,
            sealed=list(plan.sealed) or None,
        ),
        pcr11=model.Pcr11(phases=pcr11, booted_phase=BOOTED_PHASE),
        validate=model.Validate(timeout=plan.validate_timeout),
        generated_passwords=[u.name for u in plan.customizations.user if u.generate_password],
        timings=dict(ctx.timings),
        secureboot=chain.secureboot(),
        varstore=chain.shipped_varstore(),
        package_pins=ctx.pins,
        source_date_epoch=ctx.epoch,
        measured_boot=model.MeasuredBoot.model_validate(predicted),
        cache=dict(ctx.status),
        composer=composer_record(),
        pcr_policy=policy,
    )


def composer_record() -> model.Composer:
    """The composer of this build (a cached image's manifest gets it too: composer/build/pipeline.py)."""
    return model.Composer.model_validate(version.current().to_dict())
