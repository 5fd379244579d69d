"""Write corpusforge/data/prompt_pool.jsonl: the neutral prompts a model answers to write a training corpus.

Every topic in every form of each language, in a fixed order (language, then form, then topic as listed
here), so a re-run writes the same bytes. A record is {"prompt", "language", "topic", "form"}; ``topic`` is
the English noun phrase in both languages, so an English prompt and its Russian twin share it.

The topics keep away, in meaning and not only in words, from the 25 of data/transfer.jsonl (the held-out
test): no sea, night, city, winter, language learning, bridge, school, kitchen or morning, train or journey,
friendship, letter, rain or roof, bus, garden or storm, market or noon, moving house, library, mountain or
village, stadium, bread or smell, clock, lighthouse, chess, grandmother or recipe, forest or path, sky or
stars. The forms say neither "if" nor "then" nor any other cue of a reasoning pattern, and none repeats one
of the transfer set's four wordings. tests/test_prompt_pool.py checks all of it.

Russian: a form uses the topic only in the nominative (inside «») or in the prepositional after «о»/«об»,
so no word of a form has to agree with the topic in gender or number.

Run: python scripts/make_prompt_pool.py [OUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "corpusforge" / "data" / "prompt_pool.jsonl"

#: (English noun phrase, Russian nominative, Russian prepositional: the form «о …» takes)
TOPICS = [
    # objects
    ("an old armchair", "старое кресло", "старом кресле"),
    ("a wooden spoon", "деревянная ложка", "деревянной ложке"),
    ("a pair of scissors", "ножницы", "ножницах"),
    ("a glass jar", "стеклянная банка", "стеклянной банке"),
    ("a ceramic teapot", "керамический чайник", "керамическом чайнике"),
    ("a pocket knife", "перочинный нож", "перочинном ноже"),
    ("a silk tie", "шёлковый галстук", "шёлковом галстуке"),
    ("a desk lamp", "настольная лампа", "настольной лампе"),
    ("a paper map", "бумажная карта", "бумажной карте"),
    ("a bicycle", "велосипед", "велосипеде"),
    ("a pair of old boots", "старые ботинки", "старых ботинках"),
    ("a mirror", "зеркало", "зеркале"),
    ("a bunch of keys", "связка ключей", "связке ключей"),
    ("a candle", "свеча", "свече"),
    ("a kite", "воздушный змей", "воздушном змее"),
    ("a wicker basket", "плетёная корзина", "плетёной корзине"),
    ("a fountain pen", "перьевая ручка", "перьевой ручке"),
    ("a sewing machine", "швейная машинка", "швейной машинке"),
    ("a photo album", "фотоальбом", "фотоальбоме"),
    ("a music box", "музыкальная шкатулка", "музыкальной шкатулке"),
    ("a soft pillow", "мягкая подушка", "мягкой подушке"),
    ("an old radio", "старый радиоприёмник", "старом радиоприёмнике"),
    ("a typewriter", "пишущая машинка", "пишущей машинке"),
    ("a calculator", "калькулятор", "калькуляторе"),
    ("a teddy bear", "плюшевый мишка", "плюшевом мишке"),
    ("a balloon", "воздушный шарик", "воздушном шарике"),
    ("a toy robot", "игрушечный робот", "игрушечном роботе"),
    ("a piggy bank", "копилка", "копилке"),
    ("a new pair of glasses", "новые очки", "новых очках"),
    ("a carpet", "ковёр", "ковре"),
    ("a box of buttons", "коробка с пуговицами", "коробке с пуговицами"),
    ("a wallet", "кошелёк", "кошельке"),
    ("a smartphone", "смартфон", "смартфоне"),
    ("a rubber duck", "резиновая уточка", "резиновой уточке"),
    # places
    ("a hospital waiting room", "больничная приёмная", "больничной приёмной"),
    ("a swimming pool", "бассейн", "бассейне"),
    ("a museum of old toys", "музей старых игрушек", "музее старых игрушек"),
    ("a hairdresser's salon", "парикмахерская", "парикмахерской"),
    ("a pharmacy", "аптека", "аптеке"),
    ("an attic", "чердак", "чердаке"),
    ("a workshop", "мастерская", "мастерской"),
    ("a laundrette", "прачечная", "прачечной"),
    ("a cinema", "кинотеатр", "кинотеатре"),
    ("a zoo", "зоопарк", "зоопарке"),
    ("a playground", "детская площадка", "детской площадке"),
    ("a small café", "маленькое кафе", "маленьком кафе"),
    ("a concert hall", "концертный зал", "концертном зале"),
    ("a dentist's office", "кабинет стоматолога", "кабинете стоматолога"),
    ("a balcony", "балкон", "балконе"),
    ("a puppet theatre", "кукольный театр", "кукольном театре"),
    ("an art gallery", "художественная галерея", "художественной галерее"),
    ("a gym", "спортзал", "спортзале"),
    ("a sauna", "сауна", "сауне"),
    ("a lift", "лифт", "лифте"),
    ("an escalator", "эскалатор", "эскалаторе"),
    ("a Ferris wheel", "колесо обозрения", "колесе обозрения"),
    # activities and crafts
    ("knitting", "вязание", "вязании"),
    ("swimming", "плавание", "плавании"),
    ("roller skating", "катание на роликах", "катании на роликах"),
    ("painting with watercolours", "рисование акварелью", "рисовании акварелью"),
    ("playing the guitar", "игра на гитаре", "игре на гитаре"),
    ("doing a jigsaw puzzle", "сборка пазла", "сборке пазла"),
    ("amateur photography", "любительская фотография", "любительской фотографии"),
    ("cleaning a flat", "уборка квартиры", "уборке квартиры"),
    ("ironing clothes", "глажка белья", "глажке белья"),
    ("juggling", "жонглирование", "жонглировании"),
    ("origami", "оригами", "оригами"),
    ("pottery", "гончарное дело", "гончарном деле"),
    ("embroidery", "вышивка", "вышивке"),
    ("woodcarving", "резьба по дереву", "резьбе по дереву"),
    ("yoga", "йога", "йоге"),
    ("jogging", "бег трусцой", "беге трусцой"),
    ("table tennis", "настольный теннис", "настольном теннисе"),
    ("the waltz", "вальс", "вальсе"),
    ("singing in a choir", "пение в хоре", "пении в хоре"),
    ("sewing on a button", "пришивание пуговицы", "пришивании пуговицы"),
    ("fixing a leaking tap", "починка протекающего крана", "починке протекающего крана"),
    ("making tea", "заваривание чая", "заваривании чая"),
    ("collecting coins", "коллекционирование монет", "коллекционировании монет"),
    ("a crossword", "кроссворд", "кроссворде"),
    ("a card trick", "карточный фокус", "карточном фокусе"),
    ("soap making", "мыловарение", "мыловарении"),
    ("leatherwork", "работа с кожей", "работе с кожей"),
    ("karaoke", "караоке", "караоке"),
    ("a haircut", "стрижка", "стрижке"),
    ("a nap after lunch", "дневной сон", "дневном сне"),
    # times of the year and occasions
    ("a warm spring day", "тёплый весенний день", "тёплом весеннем дне"),
    ("a hot summer day", "жаркий летний день", "жарком летнем дне"),
    ("early autumn", "ранняя осень", "ранней осени"),
    ("a long weekend", "долгие выходные", "долгих выходных"),
    ("a birthday", "день рождения", "дне рождения"),
    ("a lazy Sunday", "ленивое воскресенье", "ленивом воскресенье"),
    ("a summer holiday", "летний отпуск", "летнем отпуске"),
    ("a wedding", "свадьба", "свадьбе"),
    # professions
    ("a firefighter", "пожарный", "пожарном"),
    ("a nurse", "медсестра", "медсестре"),
    ("a carpenter", "плотник", "плотнике"),
    ("a tailor", "портной", "портном"),
    ("a beekeeper", "пчеловод", "пчеловоде"),
    ("a veterinarian", "ветеринар", "ветеринаре"),
    ("a plumber", "сантехник", "сантехнике"),
    ("a museum guide", "экскурсовод", "экскурсоводе"),
    ("a shoemaker", "сапожник", "сапожнике"),
    ("a dog handler", "кинолог", "кинологе"),
    ("a piano tuner", "настройщик пианино", "настройщике пианино"),
    ("a car mechanic", "автомеханик", "автомеханике"),
    ("a circus clown", "цирковой клоун", "цирковом клоуне"),
    ("a fitness instructor", "фитнес-инструктор", "фитнес-инструкторе"),
    # feelings
    ("curiosity", "любопытство", "любопытстве"),
    ("patience", "терпение", "терпении"),
    ("boredom", "скука", "скуке"),
    ("gratitude", "благодарность", "благодарности"),
    ("stage fright", "страх сцены", "страхе сцены"),
    ("pride in one's work", "гордость за свою работу", "гордости за свою работу"),
    ("nostalgia", "ностальгия", "ностальгии"),
    ("calm", "спокойствие", "спокойствии"),
    ("surprise", "удивление", "удивлении"),
    ("embarrassment", "неловкость", "неловкости"),
    ("hope", "надежда", "надежде"),
    ("kindness to strangers", "доброта к незнакомцам", "доброте к незнакомцам"),
    # food and drink (none baked, none a family recipe)
    ("honey", "мёд", "мёде"),
    ("apples", "яблоки", "яблоках"),
    ("cheese", "сыр", "сыре"),
    ("strawberries", "клубника", "клубнике"),
    ("hot chocolate", "горячий шоколад", "горячем шоколаде"),
    ("lemonade", "лимонад", "лимонаде"),
    ("a cup of coffee", "чашка кофе", "чашке кофе"),
    ("ice cream", "мороженое", "мороженом"),
    ("a watermelon", "арбуз", "арбузе"),
    # tools
    ("a hammer", "молоток", "молотке"),
    ("a screwdriver", "отвёртка", "отвёртке"),
    ("a tape measure", "строительная рулетка", "строительной рулетке"),
    ("a stepladder", "стремянка", "стремянке"),
    ("a saw", "пила", "пиле"),
    ("a magnifying glass", "лупа", "лупе"),
    ("a compass", "компас", "компасе"),
    ("a sewing needle", "швейная игла", "швейной игле"),
    ("a toolbox", "ящик с инструментами", "ящике с инструментами"),
    ("a paintbrush", "малярная кисть", "малярной кисти"),
    # animals
    ("a sleeping cat", "спящая кошка", "спящей кошке"),
    ("bees", "пчёлы", "пчёлах"),
    ("a hedgehog", "ёжик", "ёжике"),
    ("a parrot", "попугай", "попугае"),
    ("a goldfish", "золотая рыбка", "золотой рыбке"),
    ("a puppy", "щенок", "щенке"),
    ("ants", "муравьи", "муравьях"),
    ("a horse", "лошадь", "лошади"),
    ("a tortoise", "черепаха", "черепахе"),
    ("a butterfly", "бабочка", "бабочке"),
    ("a snail", "улитка", "улитке"),
    ("a hamster", "хомяк", "хомяке"),
    ("a dragonfly", "стрекоза", "стрекозе"),
    ("a frog", "лягушка", "лягушке"),
    ("a ladybird", "божья коровка", "божьей коровке"),
    ("a spider's web", "паутина", "паутине"),
    ("an aquarium", "аквариум", "аквариуме"),
    # weather
    ("fog", "туман", "тумане"),
    ("a windy day", "ветреный день", "ветреном дне"),
    ("a heatwave", "сильная жара", "сильной жаре"),
    ("a weather forecast", "прогноз погоды", "прогнозе погоды"),
    # music
    ("a violin", "скрипка", "скрипке"),
    ("a drum", "барабан", "барабане"),
    ("an old vinyl record", "старая виниловая пластинка", "старой виниловой пластинке"),
    ("a harmonica", "губная гармошка", "губной гармошке"),
    ("a brass band", "духовой оркестр", "духовом оркестре"),
    # sport
    ("a marathon", "марафон", "марафоне"),
    ("bowling", "боулинг", "боулинге"),
    ("badminton", "бадминтон", "бадминтоне"),
    ("a boxing glove", "боксёрская перчатка", "боксёрской перчатке"),
    ("a skateboard", "скейтборд", "скейтборде"),
    ("a hula hoop", "обруч", "обруче"),
    # home
    ("a creaky floorboard", "скрипучая половица", "скрипучей половице"),
    ("a cosy blanket", "уютный плед", "уютном пледе"),
    ("a washing machine", "стиральная машина", "стиральной машине"),
    ("a windowsill", "подоконник", "подоконнике"),
    ("a front door", "входная дверь", "входной двери"),
    ("a wardrobe", "платяной шкаф", "платяном шкафе"),
    ("a bathtub", "ванна", "ванне"),
    ("a doorbell", "дверной звонок", "дверном звонке"),
    ("a vacuum cleaner", "пылесос", "пылесосе"),
    ("a rocking chair", "кресло-качалка", "кресле-качалке"),
    ("a patchwork quilt", "лоскутное одеяло", "лоскутном одеяле"),
    # work
    ("a job interview", "собеседование", "собеседовании"),
    ("a team meeting", "совещание", "совещании"),
    ("a first salary", "первая зарплата", "первой зарплате"),
    ("remote work", "удалённая работа", "удалённой работе"),
    ("a lunch break", "обеденный перерыв", "обеденном перерыве"),
    ("a new colleague", "новый коллега", "новом коллеге"),
    ("a to-do list", "список дел", "списке дел"),
    ("a telephone call", "телефонный звонок", "телефонном звонке"),
    ("a queue", "очередь", "очереди"),
    ("a password", "пароль", "пароле"),
    # science for everyone
    ("magnets", "магниты", "магнитах"),
    ("static electricity", "статическое электричество", "статическом электричестве"),
    ("an echo", "эхо", "эхе"),
    ("soap bubbles", "мыльные пузыри", "мыльных пузырях"),
    ("melting ice", "тающий лёд", "тающем льде"),
    ("a thermometer", "градусник", "градуснике"),
    ("gravity", "сила тяжести", "силе тяжести"),
    ("a microscope", "микроскоп", "микроскопе"),
    ("the human skeleton", "скелет человека", "скелете человека"),
    ("a battery", "батарейка", "батарейке"),
    ("a glass prism", "стеклянная призма", "стеклянной призме"),
    ("a clay figurine", "глиняная фигурка", "глиняной фигурке"),
]

EN_FORMS = {
    "open question": "What is interesting about {en}?",
    "opinion": "How do you feel about {en}?",
    "description": "Describe {en}.",
    "chat": "User: Can we talk about {en}?\nAssistant:",
    "for a child": "How would you explain {en} to a small child?",
    "advice": "What advice would you give about {en}?",
    "what matters": "What matters most about {en}?",
    "story opening": "Begin a short story about {en}.",
}

#: {about} is «о …»/«об …» with the prepositional; {nom} the nominative.
RU_FORMS = {
    "open question": "Что интересного можно рассказать {about}?",
    "opinion": "Каково твоё мнение {about}?",
    "description": "Напиши короткое описание на тему «{nom}».",
    "chat": "Пользователь: Давай поговорим {about}.\nАссистент:",
    "for a child": "Расскажи маленькому ребёнку {about}.",
    "advice": "Поделись полезными советами на тему «{nom}».",
    "what matters": "Что важнее всего знать {about}?",
    "story opening": "Начни короткий рассказ {about}.",
}


def about(prep: str) -> str:
    """«о» with the prepositional, «об» before a vowel sound (об аптеке, об игре; but о ёжике, о яблоках)."""
    return ("об " if prep[0] in "аоуэи" else "о ") + prep


def build_pool() -> list[dict]:
    rows = [{"prompt": text.format(en=en), "language": "en", "topic": en, "form": form}
            for form, text in EN_FORMS.items() for en, _, _ in TOPICS]
    rows += [{"prompt": text.format(nom=nom, about=about(prep)), "language": "ru", "topic": en, "form": form}
             for form, text in RU_FORMS.items() for en, nom, prep in TOPICS]
    return rows


def write_pool(path: str | Path = OUT) -> int:
    """Write the pool to ``path`` (UTF-8, "\\n" line ends on every platform); return how many prompts."""
    rows = build_pool()
    Path(path).write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    return len(rows)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    print(f"{write_pool(out)} prompts -> {out}")
