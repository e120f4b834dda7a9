//! The AWS adapter.
// TEMPORARY placeholder until the AWS adapter lands.
pub struct AwsCloud;
#[derive(Default)]
pub struct AwsOptions;
impl AwsCloud {
    pub async fn from_env(_m: std::sync::Arc<crate::metrics::Metrics>, _o: AwsOptions) -> Result<Self, std::io::Error> {
        Err(std::io::Error::other("the AWS adapter is not built yet"))
    }
}
impl super::Cloud for AwsCloud {
    async fn observe(&self, _s: &super::Scope) -> Result<crate::observed::Observed, super::CloudError> {
        unreachable!()
    }
    async fn apply(&self, _c: &crate::plan::Change) -> Result<(), super::CloudError> {
        unreachable!()
    }
}
