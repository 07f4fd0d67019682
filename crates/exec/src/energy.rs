//! GPU energy from NVML where NVIDIA GPUs and their driver are present. The library is
//! loaded at run time, so the same binary runs (and estimates instead) on machines without.

use nvml_wrapper::Nvml;

pub struct GpuEnergy {
    nvml: Option<Nvml>,
}

impl std::fmt::Debug for GpuEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEnergy").field("nvml", &self.nvml.is_some()).finish()
    }
}

impl GpuEnergy {
    /// NVML if its library loads and finds the driver; otherwise nothing is measured.
    pub fn detect() -> GpuEnergy {
        match Nvml::init() {
            Ok(nvml) => {
                let count = nvml.device_count().unwrap_or(0);
                tracing::info!(gpus = count, "NVML found: job energy is measured");
                GpuEnergy { nvml: Some(nvml) }
            }
            Err(e) => {
                tracing::info!(reason = %e, "no NVML: job energy is estimated from the node's power model");
                GpuEnergy::none()
            }
        }
    }

    /// Never measures (tests, and machines known to have no GPUs).
    pub fn none() -> GpuEnergy {
        GpuEnergy { nvml: None }
    }

    pub fn measures(&self) -> bool {
        self.nvml.is_some()
    }

    /// Energy the given GPUs have used since the driver loaded, in millijoules; `None`
    /// unless every one of them can be read (a virtual GPU without a real one behind it,
    /// a GPU older than Volta).
    pub fn read_mj(&self, gpus: &[u16]) -> Option<u64> {
        let nvml = self.nvml.as_ref()?;
        if gpus.is_empty() {
            return None;
        }
        gpus.iter().try_fold(0u64, |sum, &g| {
            let device = nvml.device_by_index(u32::from(g)).ok()?;
            Some(sum + device.total_energy_consumption().ok()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_nvml_nothing_is_measured() {
        assert_eq!(GpuEnergy::none().read_mj(&[0]), None);
        let detected = GpuEnergy::detect();
        // On a machine with NVIDIA GPUs, GPU 0 reads; elsewhere nothing does.
        assert_eq!(detected.read_mj(&[0]).is_some(), detected.measures());
        assert_eq!(detected.read_mj(&[]), None);
        assert_eq!(detected.read_mj(&[u16::MAX]), None, "no such GPU");
    }
}
