-- 0002_card_catalogue.sql: the starter card catalogue (40 cards, costs 1..8).
--
-- Re-runnable: every row is upserted by card_id, so running this again (or after a balance
-- change here) leaves exactly these values. Cards are never deleted by this migration.
-- Table: cards, created by 0001 (card_id, name, cost, attack, health, rarity, starter_copies).
--
-- Balance rule of thumb (vanilla units): attack + health = 2 * cost + 1 for commons,
-- + 2 for rares, + 3 for epics, + 4 for legendaries.
-- starter_copies = 2 on 15 commons: a new player owns 30 cards, enough for a legal 20-card deck
-- (exactly 20 cards, at most 2 copies of any card) with a curve from 1 to 6 mana.

INSERT INTO cards (card_id, name, cost, attack, health, rarity, starter_copies)
VALUES
    (1, 'Ember Sprite', 1, 2, 1, 'common', 2),
    (2, 'Mossback Toad', 1, 1, 2, 'common', 2),
    (3, 'Tavern Brawler', 1, 2, 2, 'rare', 0),
    (4, 'Goblin Cutpurse', 2, 3, 2, 'common', 2),
    (5, 'Shieldbearer Recruit', 2, 2, 3, 'common', 2),
    (6, 'Thornhide Boar', 2, 1, 4, 'common', 2),
    (7, 'Cinderhound', 2, 3, 3, 'rare', 0),
    (8, 'Dire Wolf', 3, 4, 3, 'common', 2),
    (9, 'Stone Warden', 3, 2, 5, 'common', 2),
    (10, 'Riverfolk Spearman', 3, 3, 4, 'common', 2),
    (11, 'Reckless Marauder', 3, 5, 2, 'common', 0),
    (12, 'Nightshade Assassin', 3, 5, 3, 'rare', 0),
    (13, 'Ogre Brute', 4, 5, 4, 'common', 2),
    (14, 'Ironbark Treant', 4, 3, 6, 'common', 2),
    (15, 'Highland Lancer', 4, 4, 5, 'common', 2),
    (16, 'Stormcaller Adept', 4, 6, 4, 'rare', 0),
    (17, 'Frost Drake', 5, 5, 6, 'common', 2),
    (18, 'Granite Colossus', 5, 4, 7, 'common', 2),
    (19, 'Bloodfang Reaver', 5, 7, 5, 'rare', 0),
    (20, 'Troll Berserker', 6, 7, 6, 'common', 2),
    (21, 'Siege Mammoth', 6, 5, 8, 'common', 2),
    (22, 'Obsidian Gargoyle', 6, 6, 8, 'rare', 0),
    (23, 'Wyvern Rider', 5, 6, 7, 'epic', 0),
    (24, 'Moonlit Banshee', 4, 8, 3, 'epic', 0),
    (25, 'Marsh Skulker', 1, 2, 1, 'common', 0),
    (26, 'Dustroad Bandit', 2, 4, 1, 'common', 0),
    (27, 'Cragspine Behemoth', 7, 7, 8, 'common', 0),
    (28, 'Duskwood Ranger', 5, 6, 5, 'common', 0),
    (29, 'Silverleaf Duelist', 2, 4, 2, 'rare', 0),
    (30, 'Runebound Sentinel', 4, 3, 7, 'rare', 0),
    (31, 'Ashen Knight', 7, 8, 8, 'rare', 0),
    (32, 'Tidecaller Oracle', 3, 2, 6, 'rare', 0),
    (33, 'Gravewind Lich', 6, 8, 7, 'epic', 0),
    (34, 'Sunforged Paladin', 7, 8, 9, 'epic', 0),
    (35, 'Hollowbark Ancient', 8, 6, 13, 'epic', 0),
    (36, 'Crimson Harpy Queen', 3, 5, 4, 'epic', 0),
    (37, 'Ancient Wyrm', 8, 10, 10, 'legendary', 0),
    (38, 'Morwen, the Ashen Queen', 7, 9, 9, 'legendary', 0),
    (39, 'Thalgrim Stormhammer', 6, 8, 8, 'legendary', 0),
    (40, 'Valeria of the Silver Dawn', 5, 7, 7, 'legendary', 0)
ON CONFLICT (card_id) DO UPDATE SET
    name = EXCLUDED.name,
    cost = EXCLUDED.cost,
    attack = EXCLUDED.attack,
    health = EXCLUDED.health,
    rarity = EXCLUDED.rarity,
    starter_copies = EXCLUDED.starter_copies;
