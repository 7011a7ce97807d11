//! What a build leaves: its artifact sets (collected and written as folders or zips), its test
//! and coverage reports (parsed), and the S3 uploader that sends sets away.

pub mod artifacts;
pub mod reports;
pub mod s3;
