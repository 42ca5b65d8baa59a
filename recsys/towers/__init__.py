"""Step 2 of the flow: item towers turn catalog rows into unit vectors, one block per modality."""
from recsys.towers.base import Tower as Tower
from recsys.towers.base import TowerOutput as TowerOutput
from recsys.towers.registry import create_tower as create_tower
from recsys.towers.registry import list_towers as list_towers
from recsys.towers.registry import register_tower as register_tower
