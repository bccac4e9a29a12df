"""One region's log archive bucket, locked down and aged out by lifecycle rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import aws_policies
from infra.ops.layout import RESULTS_PREFIX
from infra.settings import ArchiveSettings
from infra.settings_aws import ArchiveEncryption

# How long query answers (infra.ops, published under RESULTS_PREFIX) stay in the bucket.
QUERY_RESULTS_DAYS = 7


@dataclass(frozen=True)
class RegionArchiveArgs:
    bucket_name: str
    archive: ArchiveSettings
    encryption: ArchiveEncryption


class RegionArchive(pulumi.ComponentResource):
    """Creates the bucket and its settings as separate resources: versioning, default encryption
    (a rotated KMS key of its own with SSE-KMS), all four public access blocks, ACLs disabled
    (BucketOwnerEnforced), a policy denying non-TLS requests, lifecycle rules (Standard ->
    Standard-IA -> Glacier Instant Retrieval -> expiry) and, when configured, Object Lock in
    compliance mode.

    The bucket, its key and its settings survive ``pulumi destroy`` unless
    ``archive.destroyWithStack`` is set: losing the key would make every retained object
    unreadable.
    """

    def __init__(
        self, name: str, args: RegionArchiveArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("bacalhau-logs:aws:RegionArchive", name, None, opts)
        self._name = name
        self._args = args
        disposable = args.archive.destroy_with_stack
        # Every child is kept, not just the bucket: deleting the public access block or the
        # TLS-only policy of a retained bucket would leave it less protected than it was.
        self._kept = pulumi.ResourceOptions(parent=self, retain_on_delete=not disposable)

        self.kms_key_arn: pulumi.Output[str] | None = None
        if args.encryption is ArchiveEncryption.SSE_KMS:
            key = aws.kms.Key(
                f"{name}-key",
                description=f"Archive encryption for {args.bucket_name}",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                opts=self._kept,
            )
            self.kms_key_arn = key.arn

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=disposable,
            # Object Lock can only be switched on when the bucket is created.
            object_lock_enabled=args.archive.object_lock_days is not None,
            opts=self._kept,
        )
        self.bucket_name: pulumi.Output[str] = self.bucket.bucket
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self._protect_bucket()
        self._age_out()
        self.register_outputs({"bucketName": self.bucket_name, "bucketArn": self.bucket_arn})

    def _protect_bucket(self) -> None:
        name, bucket = self._name, self.bucket
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=self._kept,
        )
        if self.kms_key_arn is not None:
            default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                sse_algorithm="aws:kms", kms_master_key_id=self.kms_key_arn
            )
        else:
            default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                sse_algorithm="AES256"
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=default,
                    # Bucket keys cut KMS requests (and cost) by orders of magnitude.
                    bucket_key_enabled=self.kms_key_arn is not None,
                )
            ],
            opts=self._kept,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._kept,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self._kept,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(
                lambda arn: json.dumps(aws_policies.deny_insecure_transport(arn))
            ),
            # S3 rejects policy writes while the public access block is being changed.
            opts=self._kept.merge(pulumi.ResourceOptions(depends_on=[block])),
        )

    def _age_out(self) -> None:
        name, archive = self._name, self._args.archive
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="age-out-archive",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=archive.prefix),
                    transitions=[
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                            days=archive.infrequent_access_after_days, storage_class="STANDARD_IA"
                        ),
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                            days=archive.glacier_after_days, storage_class="GLACIER_IR"
                        ),
                    ],
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=archive.expire_after_days
                    ),
                    # Versioning keeps overwritten objects; they must age out too.
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=archive.infrequent_access_after_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                ),
                # Query answers (infra.ops) are read once, right after the job: keep a week.
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-query-results",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=RESULTS_PREFIX),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=QUERY_RESULTS_DAYS
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=1
                    ),
                ),
            ],
            opts=self._kept,
        )
        if archive.object_lock_days is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=self.bucket.id,
                object_lock_enabled="Enabled",
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode="COMPLIANCE", days=archive.object_lock_days
                    )
                ),
                opts=self._kept,
            )
