//! The core's error type. Each variant is one AWS error kind; the edge maps it once to the
//! exact AWS error type, HTTP status and message casing.

use nimbus_store::StoreError;

/// An error of the core, one variant per AWS error kind.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A constraint of the API model was violated (`ValidationException`, 400).
    #[error("{0}")]
    Validation(String),
    /// A parameter is wrong or conflicts (`InvalidParameterValueException`, 400).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request body could not be read (`InvalidRequestContentException`, 400).
    #[error("{0}")]
    InvalidRequestContent(String),
    /// (`ResourceNotFoundException`, 404).
    #[error("{0}")]
    NotFound(String),
    /// No provisioned-concurrency config (`ProvisionedConcurrencyConfigNotFoundException`, 404).
    #[error("{0}")]
    ProvisionedNotFound(String),
    /// (`ResourceConflictException`, 409).
    #[error("{0}")]
    Conflict(String),
    /// A `RevisionId` precondition failed (`PreconditionFailedException`, 412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// A payload over the limit (`RequestEntityTooLargeException`, 413).
    #[error("{0}")]
    RequestTooLarge(String),
    /// Throttled (`TooManyRequestsException`, 429).
    #[error("{message}")]
    TooManyRequests {
        /// The message for the caller.
        message: String,
        /// Lambda's `Reason` (e.g. `ReservedFunctionConcurrentInvocationLimitExceeded`,
        /// `ConcurrentInvocationLimitExceeded`).
        reason: &'static str,
    },
    /// The durable store failed (`ServiceException`, 500).
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// Anything else on our side (`ServiceException`, 500).
    #[error("{0}")]
    Internal(String),
}

/// A result whose error is a [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;
