//! A device's signing identity (ed25519). Its public key is the device id and the Automerge actor id.

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::id::DeviceId;

/// The device's secret signing key. It never leaves the device except wrapped by the store's key file.
pub struct DeviceKey {
    signing: SigningKey,
}

impl DeviceKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut())?;
        Ok(Self::from_secret(&secret))
    }

    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32 secret bytes, for the store's key file only.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This device's id (its public key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.signing.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", self.device_id())
    }
}
