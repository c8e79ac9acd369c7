#!/usr/bin/env bash
# The main job: set the machine up, bring up a topology and walk it.
#   sudo scripts/demo.sh [topology]      (default: pod-networking)
# The lab stays up afterwards for a tcpdump session; remove it with
#   sudo bin/labctl down --all
set -euo pipefail
cd "$(dirname "$0")/.."
topology=${1:-pod-networking}
bash scripts/setup.sh
if [ -d "/run/labctl/$topology" ]; then
  bin/labctl down "$topology"
fi
bin/labctl up "$topology"
bin/labctl walk --lab "$topology" --captures-dir captures
cat <<MSG

The lab is still up. Look at it yourself, for example:
  sudo bin/labctl exec node81 -- tcpdump -eni eth1 icmp
  sudo bin/labctl walk -v A3
  tshark -r captures/$topology-A3-*.pcapng -T fields -e frame.interface_name -e eth.src -e eth.dst -e ip.src -e ip.dst
Remove it with: sudo bin/labctl down $topology
MSG
